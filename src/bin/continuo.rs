//! `continuo`: the command-line front end on the plugins' own engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use continuo::dsp::analysis::{analyze as analyze_signal, AnalysisConfig};
use continuo::engine::audio::{self, EngineConfig, MixGain};
use continuo::engine::offline;
use continuo::model::lookup::{scan, ModelDirs};
use continuo::model::{describe_auto_backend, RuntimeSearch};
use continuo::style::StftResynthesis;
use continuo::wav;

#[derive(Parser)]
#[command(
    name = "continuo",
    version,
    about = "Continuo: neural restyling and MIDI continuation, offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Restyle a WAV file through Continuo Style's engine (output aligned with the input).
    Style {
        /// Input WAV (mono or stereo; 16/24/32-bit integer or 32-bit float).
        input: PathBuf,
        /// Output WAV (same sample format as the input).
        #[arg(short, long)]
        output: PathBuf,
        /// Dry/wet mix, 0–1.
        #[arg(long, default_value_t = 1.0)]
        mix: f32,
        /// Block size the engine is driven with, as a host would.
        #[arg(long, default_value_t = 512)]
        block: usize,
    },
    /// Show what the models will see: f0, voicing, loudness per frame and onsets.
    Analyze {
        /// Input WAV (channels are averaged).
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Samples per analysis frame.
        #[arg(long, default_value_t = 256)]
        hop: usize,
    },
    /// List the models found (valid or not, with the reason) and the inference backend in use.
    Models {
        /// Extra directory to search first (repeatable).
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// Version, supported formats and where models are looked up.
    Info,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Style {
            input,
            output,
            mix,
            block,
        } => style(&input, &output, mix, block),
        Command::Analyze { input, json, hop } => analyze(&input, json, hop),
        Command::Models { dirs } => {
            models(&dirs);
            Ok(())
        }
        Command::Info => {
            info();
            Ok(())
        }
    }
}

fn style(input: &Path, output: &Path, mix: f32, block: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&mix) {
        bail!("--mix must be between 0 and 1, got {mix}");
    }
    if !(1..=65_536).contains(&block) {
        bail!("--block must be between 1 and 65536, got {block}");
    }
    let audio = wav::read(input)?;
    if audio.channels.len() > 2 {
        bail!(
            "{}: has {} channels; Continuo Style takes mono or stereo",
            input.display(),
            audio.channels.len()
        );
    }
    if audio.non_finite_samples > 0 {
        eprintln!(
            "warning: {}: {} NaN/Inf samples replaced by silence",
            input.display(),
            audio.non_finite_samples
        );
    }
    let sample_rate = audio.sample_rate as f32;
    let channels = audio.channels.len();
    let config = EngineConfig {
        sample_rate,
        channels,
        max_block_size: block,
    };
    let (mut engine, _worker) = audio::start(config, StftResynthesis::new(sample_rate, channels))
        .context("starting the engine's worker")?;
    let rendered = offline::render(
        &mut engine,
        &audio.channels,
        block,
        MixGain { mix, gain: 1.0 },
    );
    let late = engine.stats().late_blocks.load(Ordering::Relaxed);
    if late > 0 {
        eprintln!("warning: the worker fell behind in {late} blocks; those stretches are dry");
    }
    wav::write(output, &rendered, audio.spec)?;
    println!(
        "wrote {} ({} frames, {} ch, {} Hz; engine latency {} samples, compensated)",
        output.display(),
        audio.frames(),
        channels,
        audio.sample_rate,
        engine.latency_samples()
    );
    Ok(())
}

fn analyze(input: &Path, json: bool, hop: usize) -> Result<()> {
    let audio = wav::read(input)?;
    let channels = audio.channels.len() as f32;
    let mono: Vec<f32> = (0..audio.frames())
        .map(|frame| {
            audio
                .channels
                .iter()
                .map(|channel| channel[frame])
                .sum::<f32>()
                / channels
        })
        .collect();
    let config = AnalysisConfig {
        hop_size: hop,
        ..AnalysisConfig::default()
    };
    let analysis = analyze_signal(&mono, audio.sample_rate as f32, &config)
        .with_context(|| format!("{}: cannot analyse", input.display()))?;
    let text = if json {
        serde_json::to_string_pretty(&analysis).context("encoding JSON")? + "\n"
    } else {
        analysis.to_string()
    };
    write_stdout(&text)
}

/// Writes to stdout; a reader that went away (`continuo analyze x.wav | head`) is not an error.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

/// Model directories: `--dir`s, then (in a build from the repository) its `models/`, then the
/// standard places (beside the binary, the user's data directory).
fn model_dirs(extra: &[PathBuf]) -> ModelDirs {
    let mut explicit = extra.to_vec();
    explicit.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    ModelDirs::standard(&explicit)
}

/// Where ONNX Runtime is looked for: `ORT_DYLIB_PATH`, beside the binary, and (in a build from
/// the repository) where `cargo xtask` fetched it.
fn runtime_search() -> RuntimeSearch {
    RuntimeSearch {
        dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnxruntime")],
        ..RuntimeSearch::default()
    }
}

fn models(extra_dirs: &[PathBuf]) {
    println!(
        "inference backend: {}",
        describe_auto_backend(&runtime_search())
    );
    let dirs = model_dirs(extra_dirs);
    let found = scan(&dirs);
    if found.is_empty() {
        println!("no models found in:");
        for dir in &dirs.dirs {
            println!("  {}", dir.display());
        }
    }
    for model in found {
        match model.result {
            Ok(manifest) => println!(
                "ok       {} ({:?}, {} parameters) {}",
                manifest.name,
                manifest.kind,
                manifest.parameter_count,
                model.path.display()
            ),
            Err(error) => println!("invalid  {}\n         {error}", model.path.display()),
        }
    }
}

fn info() {
    println!("continuo {}", env!("CARGO_PKG_VERSION"));
    println!("plugins: Continuo Style (org.continuo.style), Continuo Phrase (org.continuo.phrase); CLAP and VST3");
    println!(
        "audio files: WAV, mono or stereo, 8/16/24/32-bit integer or 32-bit float, any sample rate"
    );
    println!("MIDI files: standard MIDI files, type 0 and 1 (continuation: not yet available)");
    println!("models are looked up in:");
    for dir in model_dirs(&[]).dirs {
        println!("  {}", dir.display());
    }
}
