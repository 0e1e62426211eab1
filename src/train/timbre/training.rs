//! Training: [`TimbreTrainingConfig`] (nesting the model config, with seed and defaults), the
//! loop (Adam, multi-scale spectral loss through the differentiable synth), checkpoints every
//! N steps, `--resume`, a checkpoint on Ctrl-C, then export + verification + report.
//!
//! Reproducibility: the device is seeded before the model is built, and every random draw of
//! step `s` (window choice, synth noise) comes from `SplitMix(seed, s)`, so a run resumed from
//! a checkpoint repeats the uninterrupted run step for step.
//!
//! Checkpoints, `--resume`, Ctrl-C, the time budget, the loss history and the progress shown
//! are shared with the continuation trainer ([`crate::train::run`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::dsp::synth::{NoiseBandSpacing, SynthConfig};
use crate::model::FeatureConfig;
use anyhow::{bail, ensure, Context, Result};
use burn::config::Config;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use crate::train::plot::{plot_loss, PlotAxes};
use crate::train::run::{load_checkpoint, save_checkpoint, ModelFiles, RunOptions, TrainState};

use super::data::{
    load_folder, sample_windows, split_by_file, timbre_rng, training_level_db, Clip, SkippedFile,
    SplitMix, WindowBatch,
};
use super::eval::HarmonicProfile;
use super::export::{negative_control, to_vec, verify, write_model, Verification};
use super::loss::SpectralLoss;
use super::model::{TimbreControls, TimbreModel, TimbreModelConfig};
use super::synth::{DiffSynth, HarmonicPlan};
use super::{
    is_valid_f0_floor, timbre_feature_config, F0_FLOOR_LIMIT_HZ, F0_MAX_HZ, FRAME_RATE_HZ,
    SAMPLE_RATE_HZ,
};

/// Everything that defines a training run (saved as `config.json` in the checkpoint).
#[derive(Config, Debug)]
pub struct TimbreTrainingConfig {
    /// Model sizes.
    pub model: TimbreModelConfig,
    /// Seed of weights, window sampling and synth noise.
    #[config(default = 42)]
    pub seed: u64,
    /// Optimiser steps.
    #[config(default = 3000)]
    pub steps: usize,
    /// Windows per batch.
    #[config(default = 16)]
    pub batch_size: usize,
    /// Frames per window (250 = 1 s).
    #[config(default = 125)]
    pub frames_per_example: usize,
    /// Adam learning rate at step 0.
    #[config(default = 2e-3)]
    pub learning_rate: f64,
    /// Learning rate at the last step as a fraction of the first (exponential decay).
    #[config(default = 0.1)]
    pub final_lr_fraction: f64,
    /// Gradient norm clip.
    #[config(default = 2.0)]
    pub grad_clip_norm: f32,
    /// Checkpoint period, steps.
    #[config(default = 250)]
    pub checkpoint_every: usize,
    /// Validation period, steps (0 = only at the end).
    #[config(default = 500)]
    pub validate_every: usize,
    /// Record the mean training loss every this many steps.
    #[config(default = 10)]
    pub log_every: usize,
    /// Fraction of files held out for validation (split by file name hash).
    #[config(default = 0.1)]
    pub heldout_fraction: f64,
    /// Rate the synthesiser runs at in training, Hz: the model learns to fill the band up to
    /// half of it (16 000 → 8 kHz, 48 000 → 24 kHz). A whole number of samples per frame.
    #[config(default = 16000)]
    pub synth_rate_hz: u32,
    /// Noise bands spread on the mel scale instead of linearly (finer where the ear is, which
    /// matters once the bands cover 24 kHz).
    #[config(default = false)]
    pub mel_noise_bands: bool,
    /// Lowest f0 the analysis tracks, Hz (the manifest's `features.f0_min_hz`): 100 unless the
    /// instrument plays lower (a cello's C2 is 65 Hz). Style analyses each model from its own
    /// floor, and a lower floor costs look-ahead (two periods of it), so only models that need
    /// it pay it.
    #[config(default = 100.0)]
    pub f0_min_hz: f32,
    /// Slope of the harmonic distribution the decoder starts from, dB per octave (0 = every
    /// harmonic equal, DDSP's start). A full band holds ~48 harmonics; started equal, they put
    /// most of the sound kilohertz above a flute's or a clarinet's partials, and the quickest
    /// way down the loss is to silence the harmonic branch and let the noise play the notes
    /// (the collapse models/README.md describes). Starting from a natural roll-off avoids it.
    #[config(default = 0.0)]
    pub harmonic_rolloff_db: f32,
}

impl TimbreTrainingConfig {
    /// The synthesiser the model drives in training: at `synth_rate_hz`, filling the band up
    /// to its Nyquist frequency.
    pub fn synth_config(&self) -> SynthConfig {
        SynthConfig {
            noise_band_spacing: if self.mel_noise_bands {
                NoiseBandSpacing::Mel
            } else {
                NoiseBandSpacing::Linear
            },
            ..SynthConfig::new(
                self.synth_rate_hz as f32,
                self.synth_hop(),
                self.model.harmonics,
                self.model.noise_bands,
            )
        }
    }

    /// Samples per frame at the synthesis rate.
    pub fn synth_hop(&self) -> usize {
        self.synth_rate_hz as usize / FRAME_RATE_HZ as usize
    }

    fn learning_rate_at(&self, step: usize) -> f64 {
        let progress = step as f64 / self.steps.max(1) as f64;
        self.learning_rate * self.final_lr_fraction.powf(progress)
    }
}

/// Arguments of [`train_timbre`] (the CLI's `continuo-train timbre DIR --out models/NAME`).
#[derive(Debug, Clone)]
pub struct TimbreTrainArgs {
    /// Folder of WAV files of one instrument.
    pub data_dir: PathBuf,
    /// Output base: writes `<out>.onnx`, `.json`, `.report.md`, `.loss.png`, checkpoints in
    /// `<out>.ckpt/`.
    pub out: PathBuf,
    /// Run configuration (with `resume`, the checkpoint's config is used instead).
    pub config: TimbreTrainingConfig,
    /// Continue from `<out>.ckpt/` if it holds a complete checkpoint.
    pub resume: bool,
    /// Progress bars and messages on stderr.
    pub progress: bool,
    /// Stop flag (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Stop as if interrupted after this many steps (tests).
    pub stop_at_step: Option<usize>,
    /// Time budget in minutes, counted across resumes (`None` = none).
    pub max_minutes: Option<f64>,
    /// Skip export, verification and report (tests of the loop itself).
    pub skip_export: bool,
}

impl TimbreTrainArgs {
    /// A run of `config` on `data_dir` into `out`: no resume, no progress, no stop.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
        config: TimbreTrainingConfig,
    ) -> Self {
        Self {
            data_dir: data_dir.into(),
            out: out.into(),
            config,
            resume: false,
            progress: false,
            stop: Arc::new(AtomicBool::new(false)),
            stop_at_step: None,
            max_minutes: None,
            skip_export: false,
        }
    }
}

/// Below this harmonic share a decoder has collapsed to noise (a full-band trumpet started flat
/// rendered 0.0 % from step 50 on; the shipped models render 99.6–100 %).
const COLLAPSED_HARMONIC_SHARE: f32 = 0.05;

/// The final training loss is the mean over this many last steps.
const FINAL_LOSS_STEPS: usize = 50;

/// What [`train_timbre`] did.
#[derive(Debug, Clone)]
pub struct TimbreTrainOutcome {
    /// `<out>.json`, when exported.
    pub manifest: Option<PathBuf>,
    /// Loss history and position.
    pub state: TrainState,
    /// Mean training loss over the last [`FINAL_LOSS_STEPS`] steps.
    pub final_train_loss: f64,
    /// Last validation loss.
    pub final_valid_loss: Option<f64>,
    /// Files skipped while loading, with reasons.
    pub skipped: Vec<SkippedFile>,
    /// Stopped by the stop flag (a checkpoint was written; rerun with `--resume`).
    pub interrupted: bool,
    /// Stopped by the time budget.
    pub time_limited: bool,
    /// Export verification.
    pub verification: Option<Verification>,
    /// Final trained model (for tests).
    pub model: TimbreModel,
}

/// The decoder's controls for `batch`, and the f0 plan the synthesiser renders them with.
fn decode(
    model: &TimbreModel,
    synth: &DiffSynth,
    batch: &WindowBatch,
    device: &Device,
) -> (TimbreControls, HarmonicPlan) {
    let features = Tensor::from_data(
        TensorData::new(batch.features.clone(), [batch.batch, batch.frames, 2]),
        device,
    );
    let plan = HarmonicPlan::new(&batch.f0_hz, batch.batch, batch.frames, synth.config());
    (model.forward(features, None), plan)
}

/// The loss of one batch (graph kept when `model` is on an autodiff device). The first hop is
/// left out: the synth fades in from silence there, while the window starts mid-note.
pub fn batch_loss(
    model: &TimbreModel,
    synth: &DiffSynth,
    loss: &SpectralLoss,
    batch: &WindowBatch,
    noise: &[f32],
    device: &Device,
) -> Tensor<1> {
    let hop = synth.config().hop_size;
    let target = Tensor::<2>::from_data(
        TensorData::new(batch.target.clone(), [batch.batch, batch.frames * hop]),
        device,
    );
    let (out, plan) = decode(model, synth, batch, device);
    let audio = synth.render(out.amplitude, out.harmonics, out.noise, &plan, noise);
    let len = (batch.frames - 1) * hop;
    loss.forward(audio.narrow(1, hop, len), target.narrow(1, hop, len))
}

/// The harmonic branch's part of the energy the decoder renders for `batch`: near 0 when the
/// noise plays the notes (a collapsed model), most of it for a pitched instrument.
pub fn harmonic_share(
    model: &TimbreModel,
    synth: &DiffSynth,
    batch: &WindowBatch,
    noise: &[f32],
    device: &Device,
) -> f32 {
    let (out, plan) = decode(model, synth, batch, device);
    let silent_noise = out.noise.clone().zeros_like();
    let all = synth.render(
        out.amplitude.clone(),
        out.harmonics.clone(),
        out.noise,
        &plan,
        noise,
    );
    let harmonic = synth.render(out.amplitude, out.harmonics, silent_noise, &plan, noise);
    let energy = |t: Tensor<2>| f64::from(to_vec(t.clone() * t).iter().sum::<f32>());
    let (h, n) = (energy(harmonic.clone()), energy(all - harmonic));
    if h + n > 0.0 {
        (h / (h + n)) as f32
    } else {
        0.0
    }
}

fn noise_for(rng: &mut SplitMix, batch: &WindowBatch, hop: usize) -> Vec<f32> {
    (0..batch.batch * batch.frames * 2 * hop)
        .map(|_| rng.symmetric())
        .collect()
}

/// Trains a timbre model on a folder of WAVs, exports it, verifies the export on ONNX Runtime
/// and tract, and writes `<out>.{onnx,json,report.md,loss.png}`.
///
/// # Errors
/// No usable audio, bad checkpoint on `--resume`, I/O errors, export verification failure.
pub fn train_timbre(args: &TimbreTrainArgs) -> Result<TimbreTrainOutcome> {
    let files = ModelFiles::new(&args.out);
    let run = RunOptions {
        checkpoint_dir: files.checkpoint.clone(),
        resume: args.resume,
        stop: args.stop.clone(),
        progress: args.progress,
        stop_at_step: args.stop_at_step,
        max_minutes: args.max_minutes,
    };
    let config = run.config(&args.config)?;
    ensure!(
        config.frames_per_example >= 16,
        "frames_per_example must be at least 16"
    );
    ensure!(
        config.batch_size >= 1 && config.steps >= 1,
        "batch_size and steps must be ≥ 1"
    );
    ensure!(
        config.synth_rate_hz >= SAMPLE_RATE_HZ
            && config.synth_rate_hz <= 96_000
            && config.synth_rate_hz % FRAME_RATE_HZ as u32 == 0,
        "--synth-rate must be a multiple of {} Hz between {SAMPLE_RATE_HZ} and 96000 Hz (got {})",
        FRAME_RATE_HZ,
        config.synth_rate_hz
    );

    ensure!(
        is_valid_f0_floor(config.f0_min_hz),
        "--f0-min-hz must lie between {F0_FLOOR_LIMIT_HZ} and {} Hz (got {})",
        F0_MAX_HZ / 2.0,
        config.f0_min_hz
    );

    // Data.
    let features = timbre_feature_config(config.f0_min_hz);
    let wavs = super::data::wav_files(&args.data_dir)?;
    let load_bar = run.bar(wavs.len() as u64, "analysing");
    let loaded = load_folder(&args.data_dir, &features, config.synth_rate_hz, |_| {
        load_bar.inc(1)
    })?;
    load_bar.finish_and_clear();
    for s in &loaded.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let names: Vec<String> = loaded.clips.iter().map(|c| c.name.clone()).collect();
    let (train_idx, valid_idx) = split_by_file(&names, config.heldout_fraction, config.seed);
    let train: Vec<&Clip> = train_idx.iter().map(|&i| &loaded.clips[i]).collect();
    let valid: Vec<&Clip> = valid_idx.iter().map(|&i| &loaded.clips[i]).collect();
    let long_enough = |c: &&Clip| c.frames() >= config.frames_per_example + 2;
    if !train.iter().any(long_enough) {
        bail!(
            "{}: no training file is long enough for {}-frame windows ({:.2} s)",
            args.data_dir.display(),
            config.frames_per_example,
            config.frames_per_example as f32 / FRAME_RATE_HZ
        );
    }

    // Model, optimiser, state.
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut model = config
        .model
        .init(&device)
        .with_harmonic_rolloff(config.harmonic_rolloff_db);
    let mut optim = AdamConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip_norm)))
        .init();
    let mut state = TrainState::default();
    if run.resumes() {
        (model, optim, state) = load_checkpoint(&run.checkpoint_dir, model, optim)?;
    }
    let synth = DiffSynth::new(config.synth_config(), &device);
    let loss_fn = SpectralLoss::new(&device);
    let plain = Device::flex();
    let valid_synth = DiffSynth::new(config.synth_config(), &plain);
    let valid_loss_fn = SpectralLoss::new(&plain);
    let valid_set: Vec<&Clip> = if valid.iter().any(long_enough) {
        valid.clone()
    } else {
        train.clone()
    };
    let mut valid_rng = timbre_rng(config.seed, u64::MAX);
    let valid_batch = sample_windows(
        &valid_set,
        config.batch_size,
        config.frames_per_example,
        &mut valid_rng,
    );
    let valid_noise = noise_for(&mut valid_rng, &valid_batch, config.synth_hop());
    let validate = |model: &TimbreModel| -> f32 {
        let l = batch_loss(
            &model.valid(),
            &valid_synth,
            &valid_loss_fn,
            &valid_batch,
            &valid_noise,
            &plain,
        );
        to_vec(l)[0]
    };
    let harmonic_share_now = |model: &TimbreModel| {
        harmonic_share(
            &model.valid(),
            &valid_synth,
            &valid_batch,
            &valid_noise,
            &plain,
        )
    };

    let train_bar = run.bar(config.steps as u64, "training");
    train_bar.set_position(state.step as u64);
    let started = Instant::now();
    let seconds_before = state.elapsed_secs;
    let mut interrupted = false;
    // A run resumed after its budget ran out trains no further (and is exported again).
    let mut time_limited = state.step > 0 && state.step < config.steps && run.out_of_time(&state);
    while state.step < config.steps && !time_limited {
        let step = state.step;
        let mut rng = timbre_rng(config.seed, step as u64);
        let batch = sample_windows(
            &train,
            config.batch_size,
            config.frames_per_example,
            &mut rng,
        );
        let noise = noise_for(&mut rng, &batch, config.synth_hop());
        let loss = batch_loss(&model, &synth, &loss_fn, &batch, &noise, &device);
        let value = to_vec(loss.clone().detach())[0];
        ensure!(value.is_finite(), "loss became {value} at step {step}");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.learning_rate_at(step), model, grads);
        state.step = step + 1;
        state.elapsed_secs = seconds_before + started.elapsed().as_secs_f64();
        state.add_loss(f64::from(value));
        let out_of_time = run.out_of_time(&state);
        let last = state.step == config.steps || out_of_time;
        let validate_now =
            config.validate_every > 0 && state.step % config.validate_every == 0 || last;
        if state.step % config.log_every.max(1) == 0 || validate_now {
            let valid_loss = validate_now.then(|| f64::from(validate(&model)));
            state.push_point(valid_loss);
            if validate_now && args.progress {
                // The collapse to noise shows here long before the loss says so.
                let share = harmonic_share_now(&model);
                eprintln!(
                    "step {}: held-out harmonic share {:.1} %",
                    state.step,
                    100.0 * share
                );
                if share < COLLAPSED_HARMONIC_SHARE {
                    eprintln!(
                        "warning: the harmonic branch is nearly silent, so the noise plays the \
                         notes and the model will not keep their pitch; train again with \
                         --harmonic-rolloff 12"
                    );
                }
            }
            train_bar.set_message(state.message());
        }
        train_bar.set_position(state.step as u64);
        run.log(&state, config.steps);
        let stop = run.should_stop(state.step);
        let periodic = config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0;
        if stop || periodic || last {
            save_checkpoint(&run.checkpoint_dir, &config, &model, &optim, &state, &[])?;
        }
        if stop {
            interrupted = true;
            break;
        }
        if out_of_time {
            time_limited = true;
            break;
        }
    }
    train_bar.finish_and_clear();
    let final_train_loss = state
        .recent_train_loss(FINAL_LOSS_STEPS)
        .unwrap_or(f64::NAN);
    let final_valid_loss = state.last_valid_loss();
    let mut outcome = TimbreTrainOutcome {
        manifest: None,
        state: state.clone(),
        final_train_loss,
        final_valid_loss,
        skipped: loaded.skipped.clone(),
        interrupted,
        time_limited,
        verification: None,
        model: model.clone(),
    };
    if interrupted || args.skip_export {
        return Ok(outcome);
    }

    // Export, verify, report.
    let profile = HarmonicProfile::measure(&train, config.model.harmonics);
    let name = files.name();
    let train_minutes: f32 =
        train.iter().map(|c| c.frames() as f32).sum::<f32>() / FRAME_RATE_HZ / 60.0;
    let training = serde_json::json!({
        "data_dir": args.data_dir.display().to_string(),
        "train_files": train.len(),
        "heldout_files": valid.len(),
        "heldout_names": valid.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "train_minutes": train_minutes,
        "skipped_files": loaded.skipped.len(),
        "steps": state.step,
        "train_seconds": state.elapsed_secs,
        "time_limited": time_limited,
        "max_minutes": args.max_minutes,
        "config": serde_json::from_str::<serde_json::Value>(&config.to_string()).unwrap_or_default(),
        "baseline_harmonic_profile": profile,
    });
    // What Style's Auto Level brings a player's level to.
    let trained_features = FeatureConfig {
        loudness_reference_db: training_level_db(&train),
        ..features
    };
    let mut metrics = BTreeMap::new();
    metrics.insert("train_loss".to_owned(), final_train_loss);
    if let Some(v) = final_valid_loss {
        metrics.insert("valid_spectral_distance".to_owned(), v);
    }
    let manifest_path = write_model(
        &model.valid(),
        &args.out,
        &name,
        &trained_features,
        &config.synth_config(),
        training.clone(),
        metrics.clone(),
        false,
    )?;
    let verification = verify(&model, &manifest_path, config.seed)?;
    let scratch =
        std::env::temp_dir().join(format!("continuo-timbre-negative-{}", std::process::id()));
    let negative = negative_control(&model, &scratch, config.seed);
    let _ = std::fs::remove_dir_all(&scratch);
    let negative = negative?;
    for b in &verification.backends {
        let key = b.backend.to_lowercase().replace(' ', "_");
        metrics.insert(
            format!("export_max_abs_error_{key}"),
            f64::from(b.max_abs_error),
        );
        metrics.insert(
            format!("latency_t4_median_us_{key}"),
            b.latency_t4_median_us,
        );
    }
    // Rewrite the manifest with the verification figures (the ONNX file, and so its hash, is
    // unchanged).
    let manifest_path = write_model(
        &model.valid(),
        &args.out,
        &name,
        &trained_features,
        &config.synth_config(),
        training,
        metrics,
        false,
    )?;
    let axes = plot_loss(&files.plot, &state.history, None)?;
    write_report(
        args,
        &files,
        axes,
        &config,
        &outcome,
        &state,
        &verification,
        &negative,
        &train,
        &valid,
    )?;
    outcome.manifest = Some(manifest_path);
    outcome.verification = Some(verification);
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    args: &TimbreTrainArgs,
    files: &ModelFiles,
    axes: PlotAxes,
    config: &TimbreTrainingConfig,
    outcome: &TimbreTrainOutcome,
    state: &TrainState,
    verification: &Verification,
    negative: &str,
    train: &[&Clip],
    valid: &[&Clip],
) -> Result<()> {
    use std::fmt::Write;
    let minutes = |clips: &[&Clip]| {
        clips.iter().map(|c| c.frames()).sum::<usize>() as f32 / FRAME_RATE_HZ / 60.0
    };
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut r = String::new();
    writeln!(r, "# Timbre model `{name}`\n")?;
    // Sizes are named only when they differ from the defaults (the CLI's are the same).
    let defaults = TimbreTrainingConfig::new(TimbreModelConfig::new());
    let mut sizes = String::new();
    if config.model.hidden != defaults.model.hidden {
        write!(sizes, " --hidden {}", config.model.hidden)?;
    }
    if config.batch_size != defaults.batch_size {
        write!(sizes, " --batch-size {}", config.batch_size)?;
    }
    if config.model.harmonics != defaults.model.harmonics {
        write!(sizes, " --harmonics {}", config.model.harmonics)?;
    }
    if config.model.noise_bands != defaults.model.noise_bands {
        write!(sizes, " --noise-bands {}", config.model.noise_bands)?;
    }
    if config.frames_per_example != defaults.frames_per_example {
        write!(sizes, " --frames {}", config.frames_per_example)?;
    }
    if config.synth_rate_hz != defaults.synth_rate_hz {
        write!(sizes, " --synth-rate {}", config.synth_rate_hz)?;
    }
    if config.mel_noise_bands {
        write!(sizes, " --mel-noise-bands")?;
    }
    if config.f0_min_hz != super::F0_MIN_HZ {
        write!(sizes, " --f0-min-hz {}", config.f0_min_hz)?;
    }
    if config.harmonic_rolloff_db != defaults.harmonic_rolloff_db {
        write!(sizes, " --harmonic-rolloff {}", config.harmonic_rolloff_db)?;
    }
    // The budget decides how many steps a run gets on a given machine: part of the recipe.
    if let Some(minutes) = args.max_minutes {
        write!(sizes, " --max-minutes {minutes}")?;
    }
    writeln!(r, "Reproduce: `continuo-train timbre {} --out {} --steps {} --seed {}{sizes}` (or `cargo xtask train-defaults`).\n", args.data_dir.display(), args.out.display(), config.steps, config.seed)?;
    writeln!(r, "## Contract\n")?;
    let synth = config.synth_config();
    writeln!(
        r,
        "- Features at 16 kHz, hop 64 (250 frames/s); causal decoder (latency 0; the synth adds one frame). Trained with the synthesiser at {} Hz, so the model fills the band up to {:.0} Hz (`synth.max_hz`).",
        config.synth_rate_hz, synth.max_hz
    )?;
    writeln!(r, "- Features: f0 {}–{} Hz (`midi/127`, held through unvoiced frames), loudness {}…{} dB → 0…1.", config.f0_min_hz, super::F0_MAX_HZ, super::LOUDNESS_MIN_DB, super::LOUDNESS_MAX_DB)?;
    writeln!(
        r,
        "- H = {}, N = {} harmonics, M = {} {} noise bands up to {:.0} Hz; {} parameters.\n",
        config.model.hidden,
        config.model.harmonics,
        config.model.noise_bands,
        if config.mel_noise_bands {
            "mel-spaced"
        } else {
            "linear"
        },
        synth.max_hz,
        config.model.parameter_count()
    )?;
    writeln!(r, "## Data\n")?;
    writeln!(r, "- `{}`: {} training files ({:.1} min), {} held out ({:.1} min), split by file name hash (seed {}).", args.data_dir.display(), train.len(), minutes(train), valid.len(), minutes(valid), config.seed)?;
    if outcome.skipped.is_empty() {
        writeln!(r, "- Skipped files: none.\n")?;
    } else {
        writeln!(r, "- Skipped files:")?;
        for s in &outcome.skipped {
            writeln!(r, "  - `{}`: {}", s.path.display(), s.reason)?;
        }
        writeln!(r)?;
    }
    writeln!(r, "## Training\n")?;
    writeln!(r, "- {} steps × batch {} × {} frames ({:.2} s windows), Adam lr {} → {}, clip {}; {:.1} min wall time{}.", state.step, config.batch_size, config.frames_per_example, config.frames_per_example as f32 / 250.0, config.learning_rate, config.learning_rate * config.final_lr_fraction, config.grad_clip_norm, state.elapsed_secs / 60.0, if outcome.time_limited { " (stopped by the time budget)" } else { "" })?;
    writeln!(r, "- Final training loss (mean of the last {FINAL_LOSS_STEPS} steps): {:.4}; held-out multi-scale spectral distance: {}.\n", outcome.final_train_loss, outcome.final_valid_loss.map_or("n/a".into(), |v| format!("{v:.4}")))?;
    let plot_file = files
        .plot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    writeln!(
        r,
        "## Loss curve\n\n{}",
        axes.caption(&plot_file, "multi-scale spectral distance", None)
    )?;
    writeln!(r, "## Export verification (burn forward vs `crate::model`, 23 random frames in two streamed calls)\n")?;
    writeln!(r, "| backend | max abs error | T=4 call median | p99 |")?;
    writeln!(r, "| --- | --- | --- | --- |")?;
    for b in &verification.backends {
        writeln!(
            r,
            "| {} | {:.2e} | {:.0} µs | {:.0} µs |",
            b.backend, b.max_abs_error, b.latency_t4_median_us, b.latency_t4_p99_us
        )?;
    }
    writeln!(
        r,
        "\nNegative control (z/r gates swapped) failed as required: `{negative}`\n"
    )?;
    std::fs::write(&files.report, r)
        .with_context(|| format!("cannot write {}", files.report.display()))?;
    Ok(())
}
