//! `continuo-train`: the offline trainer for Continuo's models. Argument parsing only; the work
//! is in `train::pipeline`.
//!
//! Exit codes: 0 success; 1 failure (message on stderr); 2 bad arguments; 3 `--assert-bar` and
//! the model misses the quality bar; 130 interrupted by Ctrl-C (a checkpoint was saved).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use continuo::midi::tokenizer::vocab_size;
use continuo::model::backend::{BackendChoice, RuntimeSearch};
use continuo::style::controls::OCTAVE;
use continuo::train::check::{check_folder, FolderCheck};
use continuo::train::compare::{append_to_report, PromptOptions};
use continuo::train::eval::{HeldOut, QUALITY_BAR};
use continuo::train::model::Architecture;
use continuo::train::pipeline::{run_continuation, run_eval, ContinuationJob, ModelFiles};
use continuo::train::timbre::TimbreEvalOptions;
use continuo::train::training::TrainingConfig;

#[derive(Parser, Debug)]
#[command(
    name = "continuo-train",
    version,
    about = "Train Continuo's models from your own files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan a folder: MIDI and WAV files, durations, and problems per file. Exits non-zero
    /// when nothing is usable.
    Check {
        /// Folder to scan (recursively).
        dir: PathBuf,
        /// MIDI files with fewer melodic notes count as too short.
        #[arg(long, default_value_t = 8)]
        min_notes: usize,
        /// Print every file, not only the problems.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Train a continuation model (Continuo Phrase) on a folder of MIDI files and write
    /// models/NAME.onnx, .json, .report.md and .loss.png.
    Continuation(ContinuationArgs),
    /// Train a timbre model (Continuo Style) on a folder of monophonic WAV recordings of one
    /// instrument or voice; writes models/NAME.onnx, .json, .report.md and .loss.png.
    Timbre(TimbreArgs),
    /// Held-out metrics of an existing model: a continuation model on a MIDI folder, or a
    /// timbre model on a folder of paired renders (`source/` and `target/`, same file names).
    Eval {
        /// The model: models/NAME (or NAME.json).
        model: PathBuf,
        /// MIDI folder (its held-out split is used, as recorded in the manifest).
        dir: PathBuf,
        /// Inference backend.
        #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
        backend: BackendArg,
        /// Exit with code 3 if the model misses the quality bar (25 % below the 4-gram).
        #[arg(long)]
        assert_bar: bool,
        /// Host rate a timbre model is evaluated at, Hz (the pairs are read at this rate and
        /// restyled by the plugin's processor running at it).
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Play each timbre source at this level (gated RMS, dBFS) instead of its own, as a
        /// player recording quieter or hotter would; the output is scaled back before it is
        /// compared.
        #[arg(long, allow_negative_numbers = true, value_parser = input_level)]
        input_db: Option<f32>,
        /// Evaluate with Style's Auto Level off (the model hears the input's own level).
        #[arg(long)]
        no_auto_level: bool,
        /// Style's Octave (-2..2), for pairs whose target plays in another octave than the
        /// source (flute → cello: -1).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = octave)]
        octave: i32,
    },
    /// Measures a timbre model's training level on its data folder (its held-out files left
    /// out) and writes it into the manifest as `features.loudness_reference_db`, for models
    /// trained before the trainer recorded it: Style's Auto Level brings players to it.
    ReferenceLevel {
        /// The model: models/NAME.json.
        model: PathBuf,
        /// The folder of WAV files it was trained on.
        data: PathBuf,
    },
    /// Continuation models side by side on one MIDI folder's held-out split: perplexity,
    /// tokens/s and Generate → first note through Phrase's generator, on both backends
    /// (needs ONNX Runtime: set ORT_DYLIB_PATH).
    Compare {
        /// MIDI folder (its held-out split is used, as recorded in the manifests).
        dir: PathBuf,
        /// The models: models/NAME (or NAME.json), two or more.
        #[arg(required = true, num_args = 2..)]
        models: Vec<PathBuf>,
        /// Held-out pieces used as prompts for the first-note timing.
        #[arg(long, default_value_t = 12)]
        pieces: usize,
        /// Bars of 4/4 (four beats, whatever the piece's metre) played as the prompt.
        #[arg(long, default_value_t = 4)]
        prompt_bars: usize,
        /// Bars of 4/4 generated.
        #[arg(long, default_value_t = 4)]
        bars: u32,
        /// Also write the table into each model's report (replacing an earlier comparison).
        #[arg(long)]
        write_reports: bool,
    },
    /// A timbre model played as Continuo Voice (the instrument) against the instrument itself:
    /// held-out MIDI files rendered by the plugin's engine vs reference renders of the same
    /// notes (same stems, `.wav`), beside a plain additive synth with the same contours.
    EvalVoice {
        /// The model: models/NAME (or NAME.json).
        model: PathBuf,
        /// Folder of held-out MIDI files.
        midi: PathBuf,
        /// Folder of the reference renders (`<stem>.wav` for each `<stem>.mid`).
        reference: PathBuf,
        /// Host rate, Hz.
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Exit with code 3 if a quality bar is missed.
        #[arg(long)]
        assert_bar: bool,
        /// Attack, ms (the plugin's default if not given; likewise below).
        #[arg(long)]
        attack: Option<f32>,
        /// Decay, ms.
        #[arg(long)]
        decay: Option<f32>,
        /// Sustain below the peak, dB.
        #[arg(long, allow_negative_numbers = true)]
        sustain: Option<f32>,
        /// Release (60 dB), ms.
        #[arg(long)]
        release: Option<f32>,
    },
}

#[derive(clap::Args, Debug)]
struct ContinuationArgs {
    /// Folder of MIDI files (searched recursively).
    dir: PathBuf,
    /// Output path without extension, e.g. models/my-style.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training files.
    #[arg(long, default_value_t = 13)]
    epochs: usize,
    /// Stop after this many optimiser steps (even if epochs remain).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed for weights and batch order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Parallel token streams per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Tokens per training window (truncated back-propagation length).
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    /// Network: a GRU, or a decoder-only Transformer with a sliding attention window.
    #[arg(long, value_enum, default_value_t = Architecture::Gru)]
    arch: Architecture,
    /// Model width: the GRU's hidden size, or the Transformer's residual width
    /// [default: 256 for the GRU, 128 for the Transformer].
    #[arg(long)]
    hidden: Option<usize>,
    /// GRU layers or Transformer blocks [default: 1 for the GRU, 2 for the Transformer].
    #[arg(long)]
    layers: Option<usize>,
    /// GRU token embedding width (the Transformer embeds at its model width).
    #[arg(long, default_value_t = 64)]
    embed: usize,
    /// Transformer attention heads (must divide --hidden).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Transformer window: how many earlier tokens each token attends to.
    #[arg(long, default_value_t = 127)]
    memory: usize,
    /// Peak learning rate [default: 3e-3 for the GRU, 1e-3 for the Transformer].
    #[arg(long)]
    lr: Option<f64>,
    /// Transposition augmentation: up to ± this many semitones (0 = off).
    #[arg(long, default_value_t = 3)]
    transpose: u8,
    /// Percentage of files held out for evaluation (by file-name hash).
    #[arg(long, default_value_t = 10)]
    valid_percent: u32,
    /// Save a checkpoint every N steps (0 = only at the end and on Ctrl-C).
    #[arg(long, default_value_t = 250)]
    checkpoint_every: usize,
    /// Evaluate held-out loss every N steps for the loss curve (0 = only at the end).
    #[arg(long, default_value_t = 400)]
    eval_every: usize,
    /// Continue from models/NAME.ckpt (uses the checkpoint's saved settings).
    #[arg(long)]
    resume: bool,
    /// Stop (and export) after this many minutes of training, counted across resumes (a
    /// resumed run takes the value given now, not the checkpoint's).
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Fail if ONNX Runtime cannot be loaded (default: verify on tract only and say so).
    #[arg(long)]
    require_ort: bool,
    /// Exit with code 3 if the model misses the quality bar (25 % below the 4-gram).
    #[arg(long)]
    assert_bar: bool,
    /// What the model is and learned from, in one line (its card in the manifest and the
    /// report; shown by `continuo models` and Continuo Phrase).
    #[arg(long)]
    description: Option<String>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendArg {
    /// ONNX Runtime if its library loads, else tract.
    Auto,
    /// ONNX Runtime only.
    Ort,
    /// tract only.
    Tract,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Ort => BackendChoice::OnnxRuntime,
            BackendArg::Tract => BackendChoice::Tract,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            dir,
            min_notes,
            verbose,
        } => check(&dir, min_notes, verbose),
        Command::Continuation(args) => continuation(args),
        Command::Eval {
            model,
            dir,
            backend,
            assert_bar,
            rate,
            input_db,
            no_auto_level,
            octave,
        } => eval(
            &model,
            &dir,
            backend,
            assert_bar,
            &TimbreEvalOptions {
                rate,
                input_db,
                auto_level: !no_auto_level,
                octave,
            },
        ),
        Command::ReferenceLevel { model, data } => {
            continuo::train::timbre::data::write_reference_level(&model, &data).map(
                |(level, files)| {
                    println!(
                        "{}: training level {level:.2} dB ({files} files of {}); written as features.loudness_reference_db",
                        model.display(),
                        data.display()
                    );
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Timbre(args) => timbre(args),
        Command::Compare {
            dir,
            models,
            pieces,
            prompt_bars,
            bars,
            write_reports,
        } => compare(
            &dir,
            &models,
            PromptOptions {
                pieces,
                prompt_bars,
                bars,
            },
            write_reports,
        ),
        Command::EvalVoice {
            model,
            midi,
            reference,
            rate,
            assert_bar,
            attack,
            decay,
            sustain,
            release,
        } => {
            let defaults = continuo::instrument::VoiceSettings::default();
            let settings = continuo::instrument::VoiceSettings {
                attack_ms: attack.unwrap_or(defaults.attack_ms),
                decay_ms: decay.unwrap_or(defaults.decay_ms),
                sustain_db: sustain.unwrap_or(defaults.sustain_db),
                release_ms: release.unwrap_or(defaults.release_ms),
                ..defaults
            };
            eval_voice(&model, &midi, &reference, rate, assert_bar, &settings)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn check(dir: &std::path::Path, min_notes: usize, verbose: bool) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder", dir.display());
    }
    let result = check_folder(dir, min_notes, |_| {})?;
    for (kind, files) in [("MIDI", &result.midi), ("WAV", &result.wav)] {
        let usable = files.iter().filter(|f| f.usable()).count();
        println!(
            "{kind}: {} files, {usable} usable, {:.1} min usable",
            files.len(),
            FolderCheck::usable_seconds(files) / 60.0
        );
        if kind == "WAV" && !files.is_empty() {
            let mut rates: Vec<String> = files
                .iter()
                .filter(|f| f.usable())
                .map(|f| f.detail.split(',').next().unwrap_or("").to_owned())
                .collect();
            rates.sort();
            rates.dedup();
            println!("  sample rates: {}", rates.join(", "));
        }
        for file in files {
            match &file.problem {
                Some(problem) => println!("  problem: {problem}"),
                None if verbose => println!(
                    "  ok: {} ({}, {:.1} s)",
                    file.path.display(),
                    file.detail,
                    file.seconds.unwrap_or(0.0)
                ),
                None => {}
            }
        }
    }
    if result.anything_usable() {
        Ok(ExitCode::SUCCESS)
    } else {
        let named: Vec<String> = result
            .midi
            .iter()
            .chain(&result.wav)
            .map(|f| f.path.display().to_string())
            .collect();
        eprintln!(
            "error: nothing usable in {} ({} MIDI, {} WAV files{})",
            dir.display(),
            result.midi.len(),
            result.wav.len(),
            if named.is_empty() {
                String::new()
            } else {
                format!(": {}", named.join(", "))
            }
        );
        Ok(ExitCode::from(1))
    }
}

fn compare(
    dir: &std::path::Path,
    models: &[PathBuf],
    prompts: PromptOptions,
    write_reports: bool,
) -> anyhow::Result<ExitCode> {
    let results =
        continuo::train::compare::compare(models, dir, &RuntimeSearch::default(), prompts, true)?;
    let section = continuo::train::compare::markdown(&results, dir, prompts);
    println!("{section}");
    if write_reports {
        for result in &results {
            let report = ModelFiles::new(&result.manifest).report;
            append_to_report(&report, &section)?;
            println!("wrote the comparison into {}", report.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_held_out(h: &HeldOut) {
    println!("held-out tokens: {}", h.model.tokens);
    println!("{:<10} {:>11} {:>11}", "", "perplexity", "bits/token");
    for (label, e) in [
        ("model", h.model),
        ("4-gram", h.four_gram),
        ("unigram", h.unigram),
    ] {
        println!(
            "{label:<10} {:>11.3} {:>11.3}",
            e.perplexity(),
            e.bits_per_token()
        );
    }
    println!(
        "The model's perplexity is {:.1} % below the 4-gram's (bar: {:.0} %): {}",
        100.0 * h.improvement_over_four_gram(),
        100.0 * QUALITY_BAR,
        if h.meets_bar() { "met" } else { "MISSED" }
    );
}

fn continuation(args: ContinuationArgs) -> anyhow::Result<ExitCode> {
    let mut config = TrainingConfig::recipe(vocab_size());
    let transformer = args.arch == Architecture::Transformer;
    config.model.arch = args.arch;
    config.model.d_hidden = args.hidden.unwrap_or(if transformer { 128 } else { 256 });
    config.model.layers = args.layers.unwrap_or(if transformer { 2 } else { 1 });
    config.model.d_embed = args.embed;
    config.model.heads = args.heads;
    config.model.d_ff = 3 * config.model.d_hidden;
    config.model.memory = args.memory;
    if config.model.layers == 0 {
        anyhow::bail!("--layers must be at least 1");
    }
    if transformer && args.memory == 0 {
        anyhow::bail!("--memory must be at least 1 (the Transformer attends to earlier tokens)");
    }
    if transformer && (args.heads == 0 || !config.model.d_hidden.is_multiple_of(args.heads)) {
        anyhow::bail!(
            "--heads {} must divide the model width --hidden {}",
            args.heads,
            config.model.d_hidden
        );
    }
    config.seed = args.seed;
    config.epochs = args.epochs;
    config.max_steps = args.steps;
    config.batch_size = args.batch_size;
    config.seq_len = args.seq_len;
    config.learning_rate = args.lr.unwrap_or(if transformer { 1e-3 } else { 3e-3 });
    config.transpose = args.transpose;
    config.valid_percent = args.valid_percent;
    config.checkpoint_every = args.checkpoint_every;
    config.eval_every = args.eval_every;

    let stop = continuo::train::run::stop_on_ctrl_c()?;
    let job = ContinuationJob {
        data_dir: args.dir,
        out: args.out,
        config,
        resume: args.resume,
        progress: !args.quiet,
        stop,
        stop_at_step: None,
        max_minutes: args.max_minutes,
        runtime: RuntimeSearch::default(),
        require_onnx_runtime: args.require_ort,
        description: args.description,
    };
    let result = run_continuation(&job)?;
    if result.outcome.interrupted {
        eprintln!(
            "stopped at step {} of {}; checkpoint saved in {}. Continue with the same command \
             and --resume.",
            result.outcome.state.step,
            result.outcome.total_steps,
            result.files.checkpoint.display()
        );
        return Ok(ExitCode::from(130));
    }
    for note in &result.notes {
        eprintln!("note: {note}");
    }
    let state = &result.outcome.state;
    println!(
        "trained {} steps ({} epochs, {} tokens) in {:.1} min{}",
        state.step,
        state.epoch,
        state.tokens_seen,
        state.elapsed_secs / 60.0,
        if result.outcome.time_limited {
            " (time budget reached)"
        } else {
            ""
        }
    );
    for v in &result.verifications {
        println!(
            "export verified on {}: max error {:.2e} (≤ {:.0e})",
            v.backend,
            v.max_error(),
            continuo::train::export::TOLERANCE
        );
    }
    for (backend, tps) in &result.speed {
        println!("{backend}: {tps:.0} tokens/s (one token per call)");
    }
    let held_out = result.held_out.expect("completed runs are evaluated");
    print_held_out(&held_out);
    println!(
        "wrote {}, {}, {}, {}",
        result.files.onnx.display(),
        result.files.manifest.display(),
        result.files.report.display(),
        result.files.plot.display()
    );
    if args.assert_bar && !held_out.meets_bar() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `continuo-train timbre` options (the defaults reproduce the shipped timbre models).
#[derive(clap::Args, Debug)]
struct TimbreArgs {
    /// Folder of WAV files (one instrument or voice).
    dir: PathBuf,
    /// Output path without extension, e.g. models/continuo-violin.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    /// Random seed (initialisation, batches).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Decoder width (dense layers and GRU state); time per step grows with it.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Stop (and export) after this many minutes of training, counted across resumes (a
    /// resumed run takes the value given now, not the checkpoint's).
    #[arg(long, default_value_t = 14.0)]
    max_minutes: f64,
    /// Frames per training window (250 = 1 s).
    #[arg(long, default_value_t = 125)]
    frames: usize,
    /// Harmonics the model controls.
    #[arg(long, default_value_t = 32)]
    harmonics: usize,
    /// Filtered-noise bands the model controls.
    #[arg(long, default_value_t = 32)]
    noise_bands: usize,
    /// Rate the synthesiser runs at in training, Hz: the model fills the band up to half of it.
    /// 48000 makes a full-band model (the WAVs must be recorded at 48 kHz or above); 16000
    /// reproduces the v1 models (8 kHz band).
    #[arg(long, default_value_t = 16_000)]
    synth_rate: u32,
    /// Spread the noise bands on the mel scale (finer at the bottom; for full-band models).
    #[arg(long)]
    mel_noise_bands: bool,
    /// Lowest f0 tracked, Hz (50–1000): lower it for instruments that play below 100 Hz (a
    /// cello's C2 is 65 Hz). Style's quality-mode latency grows with it (two periods of it).
    #[arg(long, default_value_t = 100.0)]
    f0_min_hz: f32,
    /// Start the harmonic distribution falling this many dB per octave instead of flat: full-band
    /// models of instruments whose partials fade early (flute, trumpet, clarinet) otherwise
    /// collapse to noise. Watch the "harmonic share" lines the trainer prints.
    #[arg(long, default_value_t = 0.0)]
    harmonic_rolloff: f32,
    /// Check the held-out loss and harmonic share every this many steps.
    #[arg(long, default_value_t = 500)]
    validate_every: usize,
    /// Continue from OUT.ckpt if it holds a checkpoint (uses its saved settings).
    #[arg(long)]
    resume: bool,
}

fn timbre(args: TimbreArgs) -> anyhow::Result<ExitCode> {
    use continuo::train::timbre::model::TimbreModelConfig;
    use continuo::train::timbre::{train_timbre, TimbreTrainArgs, TimbreTrainingConfig};
    let model = TimbreModelConfig::new()
        .with_hidden(args.hidden)
        .with_harmonics(args.harmonics)
        .with_noise_bands(args.noise_bands);
    let config = TimbreTrainingConfig::new(model)
        .with_frames_per_example(args.frames)
        .with_synth_rate_hz(args.synth_rate)
        .with_mel_noise_bands(args.mel_noise_bands)
        .with_f0_min_hz(args.f0_min_hz)
        .with_harmonic_rolloff_db(args.harmonic_rolloff)
        .with_validate_every(args.validate_every)
        .with_steps(args.steps)
        .with_batch_size(args.batch_size)
        .with_seed(args.seed);
    let out = args.out.clone();
    let outcome = train_timbre(&TimbreTrainArgs {
        resume: args.resume,
        progress: true,
        stop: continuo::train::run::stop_on_ctrl_c()?,
        max_minutes: Some(args.max_minutes),
        ..TimbreTrainArgs::new(args.dir, args.out, config)
    })?;
    if outcome.interrupted {
        eprintln!(
            "stopped at step {}; checkpoint saved in {}. Continue with the same command and \
             --resume.",
            outcome.state.step,
            ModelFiles::new(&out).checkpoint.display()
        );
        return Ok(ExitCode::from(130));
    }
    for skipped in &outcome.skipped {
        println!("skipped {}: {}", skipped.path.display(), skipped.reason);
    }
    println!(
        "{} steps in {:.1} min; final training loss {:.4}{}",
        outcome.state.step,
        outcome.state.elapsed_secs / 60.0,
        outcome.final_train_loss,
        if outcome.time_limited {
            " (time budget reached)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn eval_voice(
    model: &std::path::Path,
    midi: &std::path::Path,
    reference: &std::path::Path,
    rate: u32,
    assert_bar: bool,
    settings: &continuo::instrument::VoiceSettings,
) -> anyhow::Result<ExitCode> {
    let manifest_path = if model.extension().is_some_and(|e| e == "json") {
        model.to_path_buf()
    } else {
        model.with_extension("json")
    };
    let report = continuo::train::timbre::voice_eval::eval_voice(
        &manifest_path,
        midi,
        reference,
        rate,
        settings,
    )?;
    println!("{}", report.to_markdown());
    if assert_bar && report.bars().iter().any(|(_, met)| !met) {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--octave`: a whole number in the range of Style's Octave parameter.
fn octave(text: &str) -> Result<i32, String> {
    let octave: i32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if OCTAVE.contains(octave as f32) {
        Ok(octave)
    } else {
        Err(format!("must be between {} and {}", OCTAVE.min, OCTAVE.max))
    }
}

/// `--input-db`: a level a player could record at, −60 … 0 dBFS.
fn input_level(text: &str) -> Result<f32, String> {
    let db: f32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of dB"))?;
    if (-60.0..=0.0).contains(&db) {
        Ok(db)
    } else {
        Err(format!("{db} dBFS is outside -60 … 0"))
    }
}

fn eval(
    model: &std::path::Path,
    dir: &std::path::Path,
    backend: BackendArg,
    assert_bar: bool,
    timbre: &TimbreEvalOptions,
) -> anyhow::Result<ExitCode> {
    let manifest_path = if model.extension().is_some_and(|e| e == "json") {
        model.to_path_buf()
    } else {
        model.with_extension("json")
    };
    let manifest = continuo::model::Manifest::load(&manifest_path)?;
    if manifest.kind == continuo::model::ModelKind::Timbre {
        let report = continuo::train::timbre::eval_timbre(&manifest_path, dir, timbre)?;
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    let (held_out, used, tokens_per_second) =
        run_eval(model, dir, backend.into(), &RuntimeSearch::default(), true)?;
    println!("backend: {used}, {tokens_per_second:.0} tokens/s (one token per call)");
    print_held_out(&held_out);
    if assert_bar && !held_out.meets_bar() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
