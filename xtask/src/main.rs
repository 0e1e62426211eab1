//! `cargo xtask`: nice-plug's bundler plus the project's own tasks.
//!
//! - `cargo xtask demo`: release bundles + the CLI run on a generated example WAV.
//! - `cargo xtask test`: the whole test suite (debug bundle with allocation checks, cargo
//!   tests, the VST3 check in a real host). `.ci/run` calls this.
//! - anything else (`bundle …`): nice-plug's xtask.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "continuo";
/// Features of the test build: debug builds abort when `process()` allocates.
const TEST_FEATURES: &str = "assert_process_allocs";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(),
        _ => nice_plug_xtask::main().map_err(|error| anyhow::anyhow!("{error}")),
    }
}

fn workspace_root() -> Result<PathBuf> {
    nice_plug_xtask::chdir_workspace_root().map_err(|error| anyhow::anyhow!("{error}"))?;
    std::env::current_dir().context("current directory")
}

fn bundle(extra: &[&str]) -> Result<()> {
    let args = ["bundle", PACKAGE]
        .iter()
        .chain(extra)
        .map(|s| s.to_string());
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
    bundle(&["--features", TEST_FEATURES])?;
    run(Command::new(env!("CARGO")).args(["test", "--features", TEST_FEATURES]))?;
    vst3_host_check(&root)
}

/// Loads the VST3 bundle in pedalboard (PyPI), a real VST3 host, from a venv under target/.
fn vst3_host_check(root: &Path) -> Result<()> {
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
        "numpy",
    ]))?;
    run(Command::new(&python)
        .arg(root.join("tests/hosts/pedalboard_vst3.py"))
        .arg(root.join("target/bundled/Continuo.vst3")))
}

fn demo() -> Result<()> {
    let root = workspace_root()?;
    bundle(&["--release"])?;
    let demo_dir = root.join("target/demo");
    std::fs::create_dir_all(&demo_dir).context("creating target/demo")?;
    let input = demo_dir.join("example.wav");
    write_example(&input)?;
    let output = demo_dir.join("example-styled.wav");
    run(Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "--quiet",
            "--bin",
            "continuo",
            "--",
            "style",
        ])
        .arg(&input)
        .arg("-o")
        .arg(&output))?;
    println!("\nExample input:  {}", input.display());
    println!("Styled output:  {}", output.display());
    println!("Plugin bundles: {}", root.join("target/bundled").display());
    Ok(())
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
