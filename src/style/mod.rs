//! Continuo Style's signal path, run by the engine's worker: neural timbre transfer.
//!
//! ```text
//! host rate ─► mono ─► resample to 16 kHz ─► TimbreVoice (analysis → model → controls)
//!          ◄─ every channel ◄─ HostRenderer (synth + loudness follower, at the host rate) ◄─┘
//! ```
//! - [`features`]: the feature definitions shared with the trainer (one source of truth).
//! - [`model`]: a timbre model (ONNX + manifest); the caller carries its recurrent state.
//! - [`controls`]: the musician's settings and what they do to the synth controls.
//! - [`decoder`]: styles A and B → one frame of blended controls (shared with the Voice
//!   instrument).
//! - [`voice`]: the 16 kHz streaming voice (analysis and models), and the latency modes.
//! - [`render`]: the voice's frames synthesised at the host rate, over the band the model
//!   was trained to fill.
//! - [`processor`]: the engine's [`crate::engine::audio::HopProcessor`] at the host rate, with
//!   its latency measured exactly at construction.

pub mod controls;
pub mod decoder;
pub mod features;
pub mod model;
pub mod monitor;
pub mod processor;
pub mod render;
pub mod voice;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use crate::dsp::DspError;
use crate::model::ModelError;

pub use controls::{SharedStyleSettings, StyleSettings};
pub use decoder::VoiceModels;
pub use model::TimbreModel;
pub use processor::StyleProcessor;
pub use voice::{LatencyMode, TimbreVoice};

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
    #[error(transparent)]
    Dsp(#[from] DspError),
}

/// What the style path reports to the plugin's UI and log: the current state in words, and
/// counters. Written by the worker and the loader (never by the audio thread).
#[derive(Debug, Default)]
pub struct StyleStatus {
    message: Mutex<String>,
    /// Why the style B of the voice last loaded was refused (it plays A alone), if it was.
    style_b_refused: Mutex<Option<String>>,
    /// Model calls that failed. Each such hop played what was still valid: style A alone when
    /// B failed, the dry input when A failed.
    pub model_errors: AtomicU64,
    /// Loads that failed (the previous style kept playing), and styles B refused at load.
    pub load_errors: AtomicU64,
    /// Live levels and what the model hears, for the editor.
    pub monitor: monitor::StyleMonitor,
}

impl StyleStatus {
    /// Replaces the status message.
    pub fn set(&self, message: impl Into<String>) {
        if let Ok(mut m) = self.message.lock() {
            *m = message.into();
        }
    }

    /// The status message, followed by why style B was refused when it was (so a later
    /// "playing …" message cannot hide it).
    pub fn message(&self) -> String {
        let message = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        match self.style_b_refused() {
            Some(why) if !message.is_empty() => format!("{message} ({why})"),
            Some(why) => why,
            None => message,
        }
    }

    /// Why the style B of the voice last loaded was refused, if it was.
    pub fn style_b_refused(&self) -> Option<String> {
        self.style_b_refused.lock().ok().and_then(|r| r.clone())
    }

    fn set_style_b_refused(&self, why: Option<String>) {
        if let Ok(mut r) = self.style_b_refused.lock() {
            *r = why;
        }
    }

    /// Counts a failed model call, saying what the hop played instead (`fallback`); the first
    /// failure of a run is kept as the message.
    pub fn model_failed(&self, error: &StyleError, fallback: &str) {
        if self.model_errors.fetch_add(1, Ordering::Relaxed) == 0 {
            self.set(format!(
                "model call failed ({fallback}): {}",
                crate::model::chain_message(error)
            ));
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
/// A style B that cannot be loaded does not silence A: the voice plays A alone, B's refusal
/// is counted in `status.load_errors`, kept in [`StyleStatus::style_b_refused`] (and so in the
/// status message) and handed over by [`TimbreVoice::take_style_b_refusal`].
///
/// # Errors
/// Style A cannot be found or loaded, or the voice cannot be built.
pub fn load_voice(
    choice: &StyleChoice,
    dirs: &crate::model::ModelDirs,
    backend: crate::model::BackendChoice,
    mode: LatencyMode,
    settings: std::sync::Arc<SharedStyleSettings>,
    status: std::sync::Arc<StyleStatus>,
) -> Result<TimbreVoice, StyleError> {
    let a = TimbreModel::load(&choice.a, dirs, backend)?;
    let (b, refused) = match &choice.b {
        Some(name) => match TimbreModel::load(name, dirs, backend) {
            Ok(b) => (Some(b), None),
            Err(error) => (None, Some((name, error))),
        },
        None => (None, None),
    };
    let mut voice = TimbreVoice::new(VoiceModels { a, b }, mode, settings, status.clone())?;
    match refused {
        Some((name, error)) => {
            status.load_errors.fetch_add(1, Ordering::Relaxed);
            status.set_style_b_refused(Some(format!(
                "style B `{name}` refused, playing style A alone: {}",
                crate::model::chain_message(&error)
            )));
            voice.style_b_refused = Some(error);
        }
        None => status.set_style_b_refused(None),
    }
    Ok(voice)
}

/// The timbre models a musician can choose from in `dirs`: [`DEFAULT_STYLE`] first (when
/// installed), then the others by name. Only manifests are read, so this is cheap enough for
/// plugin construction; a broken model says why when it is loaded.
pub fn available_styles(dirs: &crate::model::ModelDirs) -> Vec<String> {
    let mut names = crate::model::lookup::names_of_kind(dirs, crate::model::ModelKind::Timbre);
    names.sort_by(|x, y| (x != DEFAULT_STYLE, x).cmp(&(y != DEFAULT_STYLE, y)));
    names
}
