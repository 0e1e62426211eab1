//! The training loop: config (with seed), truncated BPTT over [`super::data::epoch_batches`],
//! Adam with warm-up + cosine decay and gradient-norm clipping, checkpoints, exact resume, and
//! a stop flag (Ctrl-C) that saves a checkpoint before returning.
//!
//! **Determinism.** Weights come from the seeded device; batches from `(seed, epoch)`; the
//! learning rate from the step number. A checkpoint holds the weights, Adam's state, the
//! position in the epoch and the hidden state carried between batches, so resuming from it
//! continues bit for bit as if the run had never stopped (tested in
//! `tests/train_continuation.rs`; a run ended by the time budget resumes with the same weights,
//! its loss history has one point more).
//!
//! **Checkpoint**: the trainers' shared folder and rules ([`super::run`]), plus `carried.bin`
//! (little-endian f32 `[L, B, S]`, the recurrent state carried between batches; see
//! [`super::model`]).

use std::time::Instant;

use crate::midi::ngram::Evaluation;
use anyhow::{bail, Context, Result};
use burn::config::Config;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::data::{epoch_batches, padded_groups, Corpus, CorpusOptions, Split};
use super::model::{ContinuationModel, ContinuationModelConfig};
use super::run::{load_checkpoint, load_checkpoint_config, save_checkpoint};
pub use super::run::{LossPoint, RunOptions, TrainState};

/// The continuation trainer's own checkpoint file: the recurrent state between batches.
const CARRIED_FILE: &str = "carried.bin";

/// Everything that decides a training run. Saved as `config.json` in every checkpoint and
/// summarised in the manifest.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// Model sizes.
    pub model: ContinuationModelConfig,
    /// Adam settings (gradient clipping included).
    pub optimizer: AdamConfig,
    /// Seed for weights and batch order.
    #[config(default = 42)]
    pub seed: u64,
    /// Parallel streams per batch.
    #[config(default = 16)]
    pub batch_size: usize,
    /// Tokens per window (truncated BPTT length).
    #[config(default = 64)]
    pub seq_len: usize,
    /// Passes over the training files.
    #[config(default = 10)]
    pub epochs: usize,
    /// Stop after this many optimiser steps even if epochs remain.
    pub max_steps: Option<usize>,
    /// Peak learning rate.
    #[config(default = 3e-3)]
    pub learning_rate: f64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    #[config(default = 0.05)]
    pub final_lr_fraction: f64,
    /// Linear warm-up steps.
    #[config(default = 50)]
    pub warmup_steps: usize,
    /// Save a checkpoint every this many steps (0 = only at the end and on Ctrl-C).
    #[config(default = 250)]
    pub checkpoint_every: usize,
    /// Record the mean training loss every this many steps.
    #[config(default = 10)]
    pub log_every: usize,
    /// Evaluate held-out loss every this many steps (0 = only at the end).
    #[config(default = 250)]
    pub eval_every: usize,
    /// Percentage of files held out.
    #[config(default = 10)]
    pub valid_percent: u32,
    /// Largest training transposition in semitones (0 = none).
    #[config(default = 0)]
    pub transpose: u8,
    /// Files with fewer melodic notes are skipped.
    #[config(default = 8)]
    pub min_notes: usize,
}

impl TrainingConfig {
    /// The default recipe for a continuation model over `vocab_size` tokens.
    pub fn recipe(vocab_size: usize) -> Self {
        TrainingConfig::new(
            ContinuationModelConfig::new(vocab_size),
            AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(1.0))),
        )
    }

    /// The corpus options this config trains with.
    pub fn corpus_options(&self) -> CorpusOptions {
        CorpusOptions {
            valid_percent: self.valid_percent,
            transpose: self.transpose,
            min_notes: self.min_notes,
        }
    }

    /// Learning rate at `step` (0-based) of `total` steps: linear warm-up, then cosine decay
    /// to `final_lr_fraction` of the peak.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warmup = self.warmup_steps.min(total / 10).max(1);
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
        self.learning_rate * (self.final_lr_fraction + (1.0 - self.final_lr_fraction) * cosine)
    }
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model, without autodiff.
    pub model: ContinuationModel,
    /// Final state (history, steps, tokens, wall time).
    pub state: TrainState,
    /// Steps the run was planned for.
    pub total_steps: usize,
    /// Stopped early by the stop flag (a checkpoint was saved).
    pub interrupted: bool,
    /// Ended early by the time budget (a normal end: the model is exported).
    pub time_limited: bool,
    /// Whether this run started from a checkpoint.
    pub resumed_from: Option<usize>,
}

/// The CPU device training runs on (burn's pure-Rust `flex` backend, multi-threaded).
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Masked next-token cross-entropy: (sum of −log p over targets ≠ `PAD`, their count).
///
/// # Shapes
/// - `logits`: `[B, T, V]`
/// - `targets`: `[B, T]`
pub fn cross_entropy_sum(logits: Tensor<3>, targets: Tensor<2, Int>) -> (Tensor<1>, Tensor<1>) {
    let [b, t, v] = logits.dims();
    let log_p = log_softmax(logits.reshape([b * t, v]), 1);
    let targets = targets.reshape([b * t, 1]);
    let mask = targets.clone().not_equal_elem(0).float();
    let picked = log_p.gather(1, targets);
    let nll = -(picked * mask.clone()).sum();
    (nll, mask.sum())
}

/// Held-out cross-entropy of a model over whole sequences (state from zeros at `BOS`,
/// every later token predicted), batched; the same quantity as
/// [`crate::midi::ngram::TokenModel::evaluate`].
pub fn evaluate_model(
    model: &ContinuationModel,
    sequences: &[Vec<u32>],
    device: &Device,
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    for (batch, len, tokens) in padded_groups(sequences, 16) {
        let all = Tensor::<2, Int>::from_data(TensorData::new(tokens, [batch, len]), device);
        let inputs = all.clone().narrow(1, 0, len - 1);
        let targets = all.narrow(1, 1, len - 1);
        let (logits, _) = model.forward(inputs, None);
        let (nll, count) = cross_entropy_sum(logits, targets);
        evaluation.nats += f64::from(nll.into_scalar::<f32>());
        evaluation.tokens += count.into_scalar::<f32>() as usize;
    }
    evaluation
}

fn tensor_f32(t: Tensor<3>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .expect("float tensors hold f32")
}

/// Trains a continuation model on the training split of `corpus`.
///
/// When `run` [resumes](RunOptions::resumes), the checkpoint's config must equal `config`
/// (take it from [`RunOptions::config`]) and training continues exactly where it stopped.
///
/// # Errors
/// No training files, unreadable or mismatched checkpoints, or I/O errors writing checkpoints.
pub fn train(config: &TrainingConfig, corpus: &Corpus, run: &RunOptions) -> Result<TrainOutcome> {
    let plain = cpu_device();
    let device = plain.clone().autodiff();
    device.seed(config.seed);

    let files: Vec<&[Vec<u32>]> = corpus
        .split(Split::Train)
        .map(|f| f.variants.as_slice())
        .collect();
    if files.is_empty() {
        bail!("no usable training files (every file is held out or was skipped)");
    }
    let valid = corpus.sequences(Split::Valid);
    let (batch_size, seq_len) = (config.batch_size, config.seq_len);
    let batches_per_epoch = epoch_batches(&files, batch_size, seq_len, config.seed, 0).len();
    if batches_per_epoch == 0 {
        bail!(
            "the training files hold too few tokens for one batch of {batch_size} × {seq_len}; \
             lower --batch-size or --seq-len"
        );
    }
    let mut total_steps = config.epochs * batches_per_epoch;
    if let Some(max) = config.max_steps {
        total_steps = total_steps.min(max);
    }

    let mut model = config.model.init(&device);
    let mut optim = config.optimizer.init();
    let mut state = TrainState::default();
    let mut carried: Option<Tensor<3>> = None;
    let mut resumed_from = None;
    if run.resumes() {
        let dir = &run.checkpoint_dir;
        let saved: TrainingConfig = load_checkpoint_config(dir)?;
        if saved.to_string() != config.to_string() {
            bail!(
                "the checkpoint in {} was made with a different config; resume with its own \
                 config or delete the checkpoint",
                dir.display()
            );
        }
        (model, optim, state) = load_checkpoint(dir, model, optim)?;
        let carried_path = dir.join(CARRIED_FILE);
        if state.batch_in_epoch > 0 && carried_path.is_file() {
            let bytes = std::fs::read(&carried_path)
                .with_context(|| format!("reading {}", carried_path.display()))?;
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let shape = config.model.state_shape(batch_size);
            if values.len() != shape.iter().product::<usize>() {
                bail!("{} has the wrong size", carried_path.display());
            }
            carried = Some(Tensor::from_data(TensorData::new(values, shape), &device));
        }
        resumed_from = Some(state.step);
    }

    let bar = run.bar(total_steps as u64, "training");
    bar.set_position(state.step as u64);

    let session_start = Instant::now();
    let elapsed_before = state.elapsed_secs;
    let mut interrupted = false;
    // A run resumed after its budget ran out trains no further (and is exported again).
    let mut time_limited =
        resumed_from.is_some() && state.step < total_steps && run.out_of_time(&state);
    let save = |model: &ContinuationModel,
                optim: &burn::optim::ModuleOptimizer,
                state: &TrainState,
                carried: Option<&Tensor<3>>| {
        let extra: Vec<(&str, Vec<u8>)> = carried
            .map(|carried| {
                let bytes = tensor_f32(carried.clone())
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                (CARRIED_FILE, bytes)
            })
            .into_iter()
            .collect();
        save_checkpoint(&run.checkpoint_dir, config, model, optim, state, &extra)
    };

    'epochs: while state.step < total_steps && !time_limited {
        let batches = epoch_batches(&files, batch_size, seq_len, config.seed, state.epoch);
        if state.batch_in_epoch >= batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            carried = None;
            continue;
        }
        for (index, batch) in batches.iter().enumerate().skip(state.batch_in_epoch) {
            if state.step >= total_steps {
                break 'epochs;
            }
            let shape = [batch.batch_size, batch.seq_len];
            let inputs =
                Tensor::<2, Int>::from_data(TensorData::new(batch.inputs.clone(), shape), &device);
            let targets =
                Tensor::<2, Int>::from_data(TensorData::new(batch.targets.clone(), shape), &device);
            let (logits, h_n) = model.forward(inputs, carried.take());
            let (nll, count) = cross_entropy_sum(logits, targets);
            let loss = nll / count;
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            if !loss_value.is_finite() {
                bail!(
                    "training diverged at step {} (loss {loss_value}); lower --lr",
                    state.step
                );
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let lr = config.learning_rate_at(state.step, total_steps);
            model = optim.step(lr, model, grads);
            carried = Some(h_n.detach());

            state.step += 1;
            state.batch_in_epoch = index + 1;
            state.tokens_seen += (batch.batch_size * batch.seq_len) as u64;
            state.elapsed_secs = elapsed_before + session_start.elapsed().as_secs_f64();
            state.add_loss(loss_value);
            let out_of_time = run.out_of_time(&state);
            let last = state.step == total_steps || out_of_time;
            let eval_now = config.eval_every > 0 && state.step % config.eval_every == 0;
            if state.step % config.log_every.max(1) == 0 || eval_now || last {
                let valid_loss = (eval_now || last) && !valid.is_empty();
                let valid_loss = valid_loss
                    .then(|| evaluate_model(&model.valid(), &valid, &plain).nats_per_token());
                state.push_point(valid_loss);
                bar.set_message(state.message());
            }
            bar.set_position(state.step as u64);
            run.log(&state, total_steps);

            let stop = run.should_stop(state.step);
            let periodic = config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0;
            if stop || periodic || last {
                save(&model, &optim, &state, carried.as_ref())?;
            }
            if stop {
                interrupted = true;
                break 'epochs;
            }
            if out_of_time {
                time_limited = true;
                break 'epochs;
            }
        }
        if state.batch_in_epoch >= batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            carried = None;
        }
    }
    state.elapsed_secs = elapsed_before + session_start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(TrainOutcome {
        model: model.valid(),
        state,
        total_steps,
        interrupted,
        time_limited,
        resumed_from,
    })
}
