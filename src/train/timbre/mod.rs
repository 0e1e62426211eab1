//! Timbre models: frame features (f0, loudness) → controls of the harmonic-plus-noise
//! synthesiser [`crate::dsp::synth::HarmonicNoiseSynth`] (DDSP, Engel et al. 2020).
//!
//! # The timbre model contract (what the plugin is written against)
//! - Features at [`SAMPLE_RATE_HZ`] (16 kHz), hop [`HOP_SIZE`] (64 samples, 250 frames/s). The
//!   decoder is causal: `latency_samples` = 0 in the manifest.
//! - Features per frame (defined in the library, [`crate::style::features`], so the plugin runs
//!   exactly what the model was trained on): [`crate::dsp::analysis::analyze`] with [`timbre_analysis_config`],
//!   normalised by [`FeatureNormalizer`]: `f0_norm = midi(f0_hz) / 127` with unvoiced frames
//!   holding the last voiced f0 (or `f0_min_hz` before any voiced frame), and
//!   `loudness_norm = clamp((loudness_db − min) / (max − min), 0, 1)`.
//! - ONNX I/O: `features` f32 `[1, T, 2]`, `h0` f32 `[1, 1, H]` → `amplitude` `[1, T, 1]`
//!   (linear ≥ 0), `harmonics` `[1, T, N]` (softmax), `noise` `[1, T, M]` (linear ≥ 0),
//!   `h_n` `[1, 1, H]`. `T` is symbolic; state is carried through `h0`/`h_n`.
//! - Synthesis: the controls drive `HarmonicNoiseSynth` with the **held** f0 in Hz (the same f0
//!   that was normalised) at `--synth-rate` in training (16 kHz: the v1 models' 8 kHz band;
//!   48 kHz: full band), noise bands linear or mel spaced up to `synth.max_hz` (its Nyquist
//!   frequency), written to the manifest; the plugin renders at the host rate within that
//!   band. The target audio is read at the synthesis rate. The synth adds one hop
//!   of latency (its documented control timeline).
//!
//! # Layout (burn's guide, style practice 16)
//! [`data`] (audio folder → frames, split by file) · [`model`] (decoder) · [`synth`]
//! (differentiable synthesiser matching `dsp::synth`) · [`loss`] (multi-scale spectral loss,
//! = `dsp::metrics::multiscale_spectral_distance`) · [`training`] (config, loop, checkpoints) ·
//! [`export`] (ONNX through `GraphBuilder`, verified on both backends) · [`eval`] (paired
//! transfer evaluation against two baselines) · [`voice_eval`] (the models played as Continuo
//! Voice against the instrument).

pub mod data;
pub mod eval;
pub mod export;
pub mod loss;
pub mod model;
pub mod synth;
pub mod training;
pub mod voice_eval;

pub use crate::style::features::*;
pub use eval::{eval_timbre, EvalReport, TimbreEvalOptions};
pub use training::{train_timbre, TimbreTrainArgs, TimbreTrainOutcome, TimbreTrainingConfig};
