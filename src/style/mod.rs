//! Continuo Style's signal path, run by the engine's worker: neural timbre transfer.
//!
//! ```text
//! host rate ─► mono ─► resample to 16 kHz ─► TimbreVoice (analysis → model → synth)
//!          ◄─ every channel ◄─ resample to host rate ◄─┘
//! ```
//! - [`features`]: the feature definitions shared with the trainer (one source of truth).
//! - [`model`]: a timbre model (ONNX + manifest) with its carried state.
//! - [`controls`]: the musician's settings and what they do to the synth controls.
//! - [`voice`]: the 16 kHz streaming voice, and the latency modes.
//! - [`processor`]: the engine's [`crate::engine::audio::HopProcessor`] at the host rate, with
//!   its latency measured exactly at construction.

pub mod controls;
pub mod features;
pub mod model;
pub mod processor;
pub mod voice;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use crate::dsp::DspError;
use crate::model::ModelError;

pub use controls::{SharedStyleSettings, StyleSettings};
pub use model::TimbreModel;
pub use processor::StyleProcessor;
pub use voice::{LatencyMode, TimbreVoice, VoiceModels};

/// The timbre model Continuo Style plays when none is chosen.
pub const DEFAULT_STYLE: &str = "continuo-violin";

/// Why a style could not be loaded or run.
#[derive(Debug, Error)]
pub enum StyleError {
    /// No manifest of that name in the model directories.
    #[error("timbre model `{name}` not found (searched: {searched})")]
    NotFound {
        /// Name asked for.
        name: String,
        /// Directories searched.
        searched: String,
    },
    /// Loading failed (missing file, corrupt, wrong kind, …).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model loads but does not fit the timbre runtime.
    #[error("{}: not a usable timbre model: {reason}", path.display())]
    Unsupported {
        /// The manifest.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// DSP set-up failed (e.g. an unsupported sample rate).
    #[error("signal path: {0}")]
    Dsp(#[from] DspError),
}

/// What the style path reports to the plugin's UI and log: the current state in words, and
/// counters. Written by the worker and the loader (never by the audio thread).
#[derive(Debug, Default)]
pub struct StyleStatus {
    message: Mutex<String>,
    /// Model calls that failed (each turned into a silent hop).
    pub model_errors: AtomicU64,
    /// Loads that failed (the previous style kept playing).
    pub load_errors: AtomicU64,
}

impl StyleStatus {
    /// Replaces the status message.
    pub fn set(&self, message: impl Into<String>) {
        if let Ok(mut m) = self.message.lock() {
            *m = message.into();
        }
    }

    /// The status message.
    pub fn message(&self) -> String {
        self.message.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Counts a failed model call; the first one of a run is kept as the message.
    pub fn model_failed(&self, error: &StyleError) {
        if self.model_errors.fetch_add(1, Ordering::Relaxed) == 0 {
            self.set(format!("model call failed (hop played silent): {error}"));
        }
    }
}

/// Which styles to play: A, and optionally B to morph towards (names from the model
/// directories, or manifest paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyleChoice {
    /// Style A.
    pub a: String,
    /// Style B, if any.
    pub b: Option<String>,
}

/// Loads the models of `choice` and builds a voice for them.
///
/// # Errors
/// The first model that cannot be found or loaded, or a voice that cannot be built.
pub fn load_voice(
    choice: &StyleChoice,
    dirs: &crate::model::ModelDirs,
    backend: crate::model::BackendChoice,
    mode: LatencyMode,
    settings: std::sync::Arc<SharedStyleSettings>,
    status: std::sync::Arc<StyleStatus>,
) -> Result<TimbreVoice, StyleError> {
    let a = TimbreModel::load(&choice.a, dirs, backend)?;
    let b = match &choice.b {
        Some(name) => Some(TimbreModel::load(name, dirs, backend)?),
        None => None,
    };
    TimbreVoice::new(VoiceModels { a, b }, mode, settings, status)
}

/// The timbre models a musician can choose from in `dirs`: [`DEFAULT_STYLE`] first (when
/// installed), then the others by name. Only manifests are read, so this is cheap enough for
/// plugin construction; a broken model says why when it is loaded.
pub fn available_styles(dirs: &crate::model::ModelDirs) -> Vec<String> {
    let mut names = crate::model::lookup::names_of_kind(dirs, crate::model::ModelKind::Timbre);
    names.sort_by(|x, y| (x != DEFAULT_STYLE, x).cmp(&(y != DEFAULT_STYLE, y)));
    names
}
