//! `continuo`: the command-line front end on the plugins' own engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use continuo::engine::audio::{self, EngineConfig, MixGain};
use continuo::engine::offline;
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
        Command::Info => {
            info();
            Ok(())
        }
    }
}

fn style(input: &std::path::Path, output: &std::path::Path, mix: f32, block: usize) -> Result<()> {
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

fn info() {
    println!("continuo {}", env!("CARGO_PKG_VERSION"));
    println!("plugins: Continuo Style (org.continuo.style), Continuo Phrase (org.continuo.phrase); CLAP and VST3");
    println!(
        "audio files: WAV, mono or stereo, 8/16/24/32-bit integer or 32-bit float, any sample rate"
    );
    println!("MIDI files: standard MIDI files, type 0 and 1 (continuation: not yet available)");
    println!("models: none are loaded yet (the model runtime arrives with the model contract)");
}
