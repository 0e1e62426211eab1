//! `cargo xtask`: nice-plug's bundler plus the project's own tasks.
//!
//! - `cargo xtask demo`: release bundles + the CLI run on a generated example WAV.
//! - `cargo xtask test`: the whole test suite (formatting, debug bundle with allocation checks,
//!   cargo tests, clippy, the VST3 checks in real hosts, both editors opened under Xvfb and
//!   saved as pictures, the CLAP and VST3 conformance suites when `../shared/tools` is
//!   there). `.ci/run` calls this.
//! - `cargo xtask bundle continuo [--release]`: nice-plug's bundler, then the ONNX Runtime
//!   library (from the `onnxruntime` PyPI wheel) and `models/` are placed beside the plugin
//!   in both bundles (`Continuo.vst3/Contents/…`, `Continuo-data/` next to `Continuo.clap`).
//! - `cargo xtask bundle-voice [--release]`: Continuo Voice alone in `Continuo Voice.vst3`, for
//!   hosts that load only a bundle's first class (DawDreamer).
//! - `cargo xtask screenshots`: both editors under Xvfb, saved in `target/screenshots/` and
//!   copied to `examples/screenshots/` (the README's pictures); needs `cargo test` first.
//! - `cargo xtask train-defaults`: reproduces the default models in `models/` from nothing
//!   (system packages, data, trainer build, training, evaluation); see `train_defaults.rs`.
//! - anything else: nice-plug's xtask.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod conformance;
mod screenshots;
mod system;
mod train_defaults;

const PACKAGE: &str = "continuo";
/// Features of the test bundle: debug builds abort when `process()` allocates.
const TEST_FEATURES: &str = "assert_process_allocs";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(),
        Some("screenshots") => {
            let root = workspace_root()?;
            let library = fetch_onnxruntime(&root)?;
            screenshots::pictures(&root, &library)?;
            screenshots::publish(&root)
        }
        Some("train-defaults") => train_defaults::main(&args[1..]),
        Some("bundle") => {
            let root = workspace_root()?;
            nice_plug_bundle(args)?;
            install_sidecars(&root)
        }
        Some("bundle-voice") => {
            let root = workspace_root()?;
            let release = args[1..].iter().any(|arg| arg == "--release");
            bundle_voice_only(&root, release, &[])
        }
        _ => nice_plug_xtask::main().map_err(|error| anyhow::anyhow!("{error}")),
    }
}

/// Pinned to what `ort` 2.0.0-rc.15 (API 24) expects.
const ORT_VERSION: &str = "1.31.1";

/// Fetches the ONNX Runtime library (once) into `target/onnxruntime`; returns the library path.
fn fetch_onnxruntime(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/onnxruntime");
    let library = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    if !library.exists() {
        run(Command::new("bash")
            .arg(root.join("xtask/fetch-ort.sh"))
            .arg(&dir)
            .env("ORT_VERSION", ORT_VERSION))
        .context("fetching ONNX Runtime from PyPI (needs python3 with pip)")?;
    }
    Ok(library)
}

/// Copies the runtime library (with its licence files) and the models beside the plugin in
/// both bundles nice-plug's bundler wrote, where the plugin looks for them.
fn install_sidecars(root: &Path) -> Result<()> {
    let library = fetch_onnxruntime(root)?;
    let bundled = root.join("target/bundled");
    // A `.clap` is one file: its data folder sits beside it and holds the library too.
    let clap_data = bundled.join("Continuo-data");
    ship_beside(root, &library, &clap_data, &clap_data)?;
    ship_into_vst3(root, &library, &bundled.join("Continuo.vst3"))?;
    println!("Added ONNX Runtime {ORT_VERSION} and models/ to both bundles");
    Ok(())
}

/// Inside a `.vst3` the data goes in `Contents/Resources`, the library beside the plugin.
fn ship_into_vst3(root: &Path, library: &Path, bundle: &Path) -> Result<()> {
    let contents = bundle.join("Contents");
    ship_beside(
        root,
        library,
        &contents.join("Resources"),
        &contents.join("x86_64-linux"),
    )
}

/// Fills `data` with the runtime's licences and `models/`, and puts the runtime in `binaries`.
fn ship_beside(root: &Path, library: &Path, data: &Path, binaries: &Path) -> Result<()> {
    let runtime_dir = library.parent().context("runtime directory")?;
    // Start clean so models deleted from models/ disappear from the bundle too.
    if data.exists() {
        std::fs::remove_dir_all(data).with_context(|| format!("clearing {}", data.display()))?;
    }
    std::fs::create_dir_all(data.join("models"))
        .with_context(|| format!("creating {}", data.display()))?;
    for licence in ["LICENSE-onnxruntime", "ThirdPartyNotices-onnxruntime.txt"] {
        copy(&runtime_dir.join(licence), &data.join(licence))?;
    }
    for entry in std::fs::read_dir(root.join("models")).context("reading models/")? {
        let path = entry.context("reading models/")?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "onnx")
        ) {
            copy(
                &path,
                &data
                    .join("models")
                    .join(path.file_name().context("file name")?),
            )?;
        }
    }
    copy(
        library,
        &binaries.join(library.file_name().context("library name")?),
    )
}

/// The Voice-only VST3 bundle. Hosts that load only the first class of a bundle (DawDreamer
/// 0.9: its issue #90) would get Style from `Continuo.vst3`.
/// It shares Voice's class id with `Continuo.vst3`, so a DAW needs only one of the two.
pub(crate) const VOICE_BUNDLE: &str = "Continuo Voice.vst3";

/// Builds Continuo Voice alone (feature `voice-only`) into `target/bundled/Continuo Voice.vst3`,
/// with the runtime and models. Assembled here rather than by nice-plug's bundler, which names
/// every bundle after `bundler.toml` and would overwrite `Continuo.vst3`.
fn bundle_voice_only(root: &Path, release: bool, features: &[&str]) -> Result<()> {
    let features = features
        .iter()
        .chain(&["voice-only"])
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build",
        "--lib",
        "--package",
        PACKAGE,
        "--features",
        &features,
    ]);
    if release {
        cargo.arg("--release");
    }
    run(&mut cargo)?;
    let profile = if release { "release" } else { "debug" };
    let built = root.join("target").join(profile).join("libcontinuo.so");
    let bundle = root.join("target/bundled").join(VOICE_BUNDLE);
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle)
            .with_context(|| format!("clearing {}", bundle.display()))?;
    }
    let binaries = bundle.join("Contents/x86_64-linux");
    std::fs::create_dir_all(&binaries)
        .with_context(|| format!("creating {}", binaries.display()))?;
    copy(&built, &binaries.join("Continuo Voice.so"))?;
    ship_into_vst3(root, &fetch_onnxruntime(root)?, &bundle)?;
    println!(
        "Created a VST3 bundle at '{}' (with ONNX Runtime and models/)",
        bundle.display()
    );
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    nice_plug_xtask::chdir_workspace_root().map_err(|error| anyhow::anyhow!("{error}"))?;
    std::env::current_dir().context("current directory")
}

/// `cargo xtask bundle continuo EXTRA…` including the runtime and models.
fn bundle(root: &Path, extra: &[&str]) -> Result<()> {
    nice_plug_bundle(
        ["bundle", PACKAGE]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect(),
    )?;
    install_sidecars(root)
}

fn nice_plug_bundle(args: Vec<String>) -> Result<()> {
    nice_plug_xtask::main_with_args("cargo xtask", args)
        .map_err(|error| anyhow::anyhow!("bundling failed: {error}"))
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("+ {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn test() -> Result<()> {
    let root = workspace_root()?;
    let mut clock = PhaseClock::start();
    // Formatting first: it takes a second and needs no build.
    run(Command::new(env!("CARGO")).args(["fmt", "--all", "--", "--check"]))
        .context("unformatted code: run `cargo fmt --all`")?;
    bundle(&root, &["--features", TEST_FEATURES])?;
    bundle_voice_only(&root, false, &[TEST_FEATURES])?;
    let library = fetch_onnxruntime(&root)?;
    clock.lap("debug bundle");
    // The library's own tests run without the feature: nice-plug's checking allocator would
    // clash with the DSP tests' counting allocator. The plugins are checked through the
    // bundle, which is built with it. Everything here uses the trainer's feature set, so the
    // benchmarks and tests share one build of every crate.
    // Benchmarks are compiled (so they cannot rot) but run only by `cargo bench`.
    run(Command::new(env!("CARGO")).args([
        "test",
        "--features",
        "train",
        "--benches",
        "--no-run",
    ]))?;
    // With the trainer: its tests (tiny synthetic data) and the style-vs-eval check run too.
    run(Command::new(env!("CARGO"))
        .args(["test", "--features", "train"])
        .env("ORT_DYLIB_PATH", &library))?;
    clock.lap("cargo test");
    run(Command::new(env!("CARGO")).args([
        "clippy",
        "--all-targets",
        "--features",
        "train",
        "--",
        "-D",
        "warnings",
    ]))?;
    clock.lap("clippy");
    vst3_host_check(&root, &library)?;
    clock.lap("VST3 hosts");
    screenshots::pictures(&root, &library)?;
    screenshots::open_and_close_in_host(&library)?;
    clock.lap("editors under Xvfb");
    conformance::run(&root)?;
    clock.lap("conformance suites");
    clock.summary();
    Ok(())
}

/// Wall time of each phase of `cargo xtask test`, printed at the end: CI has a time limit,
/// and this shows where a cold run spends it.
struct PhaseClock {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl PhaseClock {
    fn start() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((phase, now - self.last));
        self.last = now;
    }

    fn summary(&self) {
        println!("\ncargo xtask test: all passed");
        for (phase, took) in &self.laps {
            println!("  {phase:<20} {:>6.0} s", took.as_secs_f64());
        }
        let total: std::time::Duration = self.laps.iter().map(|(_, took)| *took).sum();
        println!("  {:<20} {:>6.0} s", "total", total.as_secs_f64());
    }
}

/// Loads the VST3 bundles in two real hosts, from a venv under target/: pedalboard (all three
/// plugins) and DawDreamer (which loads only a bundle's first class: Style, and Voice from the
/// Voice-only bundle).
fn vst3_host_check(root: &Path, library: &Path) -> Result<()> {
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python venv for the VST3 host check (on Debian: apt-get install python3-venv)")?;
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "pedalboard==0.9.*",
        "dawdreamer==0.9.*",
        "numpy",
    ]))?;
    // The CLI (built by `cargo test`) is the reference the plugins must match.
    let cli = root.join("target/debug/continuo");
    let bundled = root.join("target/bundled");
    for (script, bundle) in [
        ("pedalboard_vst3.py", bundled.join("Continuo.vst3")),
        ("dawdreamer_host.py", bundled.clone()),
    ] {
        run(Command::new(&python)
            .arg(root.join("tests/hosts").join(script))
            .arg(bundle)
            .arg(&cli)
            .env("ORT_DYLIB_PATH", library))?;
    }
    Ok(())
}

fn demo() -> Result<()> {
    let root = workspace_root()?;
    bundle(&root, &["--release"])?;
    let demo_dir = root.join("target/demo");
    std::fs::create_dir_all(&demo_dir).context("creating target/demo")?;
    let input = demo_dir.join("example.wav");
    write_example(&input)?;
    let output = demo_dir.join("example-styled.wav");
    run(continuo_cli("style").arg(&input).arg("-o").arg(&output))?;
    println!("\nExample input:  {}", input.display());
    println!("Styled output:  {}", output.display());

    let phrase = demo_dir.join("example.mid");
    write_example_midi(&phrase)?;
    let continued = demo_dir.join("example-continued.mid");
    if root.join("models/continuo-chorales.json").exists() {
        run(continuo_cli("continue")
            .arg(&phrase)
            .arg("-o")
            .arg(&continued)
            .args(["--bars", "4", "--seed", "1"]))?;
        println!("Phrase input:   {}", phrase.display());
        println!("Continuation:   {}", continued.display());
    } else {
        println!("(no default continuation model in models/ yet: skipped `continuo continue`)");
    }
    println!("Plugin bundles: {}", root.join("target/bundled").display());
    Ok(())
}

/// `continuo <command>` from a release build of this workspace.
fn continuo_cli(command: &str) -> Command {
    let mut cli = Command::new(env!("CARGO"));
    cli.args([
        "run",
        "--release",
        "--quiet",
        "--bin",
        "continuo",
        "--",
        command,
    ]);
    cli
}

/// A two-bar melody as a type-0 standard MIDI file (480 ticks per quarter, 100 BPM).
fn write_example_midi(path: &Path) -> Result<()> {
    const TICKS: u16 = 480;
    let melody = [67u8, 69, 71, 72, 74, 72, 71, 69, 67, 64, 62, 64, 66, 67];
    let mut track: Vec<u8> = vec![0x00, 0xFF, 0x51, 0x03, 0x09, 0x27, 0xC0]; // tempo 600 000 µs
    for &key in &melody {
        // Eighth notes: on at delta 0, off after 240 ticks (variable-length 0x81 0x70).
        track.extend_from_slice(&[0x00, 0x90, key, 90, 0x81, 0x70, 0x80, key, 0]);
    }
    track.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut bytes = b"MThd".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 1]);
    bytes.extend_from_slice(&TICKS.to_be_bytes());
    bytes.extend_from_slice(b"MTrk");
    bytes.extend_from_slice(&(track.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&track);
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// A 4-second stereo phrase of harmonic tones (a C major arpeggio), 48 kHz 24-bit.
fn write_example(path: &Path) -> Result<()> {
    let sample_rate = 48_000u32;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)
        .with_context(|| format!("creating {}", path.display()))?;
    let notes_hz = [
        261.63f32, 329.63, 392.0, 523.25, 392.0, 329.63, 261.63, 196.0,
    ];
    let note_len = sample_rate as usize / 2;
    for (index, f0) in notes_hz.iter().enumerate() {
        for n in 0..note_len {
            let t = n as f32 / sample_rate as f32;
            let envelope = (t * 50.0).min(1.0) * (-3.0 * t).exp();
            let tone: f32 = (1..=6)
                .map(|h| (std::f32::consts::TAU * f0 * h as f32 * t).sin() / h as f32)
                .sum();
            let sample = 0.3 * envelope * tone;
            let pan = index as f32 / notes_hz.len() as f32;
            for gain in [1.0 - 0.5 * pan, 0.5 + 0.5 * pan] {
                writer
                    .write_sample((sample * gain * 8_388_607.0) as i32)
                    .context("writing example")?;
            }
        }
    }
    writer.finalize().context("finishing example WAV")
}
