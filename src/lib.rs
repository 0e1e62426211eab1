//! # Continuo
//!
//! Three plugins (CLAP + VST3) and a CLI on one engine:
//! - **Continuo Style** restyles live audio with a neural timbre model.
//! - **Continuo Phrase** writes MIDI continuations of what is played on its track.
//! - **Continuo Voice** plays MIDI notes with the same timbre models.
//!
//! Layers, each using only the ones above it:
//! 1. [`dsp`]: pure signal processing (STFT, pitch, loudness, onsets, synthesis, resampling,
//!    metrics) shared by trainer, plugins and CLI.
//! 2. [`midi`]: MIDI files, the token vocabulary, key detection, n-gram baselines.
//! 3. [`model`]: model manifests and ONNX inference (ONNX Runtime or tract).
//! 4. [`engine`]: the real-time engine: rings, worker threads, crossfades, latency.
//! 5. [`style`], [`phrase`], [`instrument`]: what each product does, run by the engine.
//! 6. [`wav`]: audio files for the CLI and trainer.
//! 7. [`plugin`]: nice-plug glue only.
//!
//! With the `train` feature, `train` holds the offline trainer (burn) behind `continuo-train`.

pub mod dsp;
pub mod editor;
pub mod engine;
pub mod instrument;
pub mod midi;
pub mod model;
pub mod phrase;
pub mod plugin;
pub mod style;
#[cfg(feature = "train")]
pub mod train;
pub mod wav;

pub use plugin::phrase::ContinuoPhrase;
pub use plugin::style::ContinuoStyle;
pub use plugin::voice::ContinuoVoice;

#[cfg(not(feature = "voice-only"))]
nice_plug::nice_export_clap!(ContinuoStyle, ContinuoPhrase, ContinuoVoice);
#[cfg(not(feature = "voice-only"))]
nice_plug::nice_export_vst3!(ContinuoStyle, ContinuoPhrase, ContinuoVoice);

// Hosts that load only the first class of a VST3 bundle (DawDreamer) get Voice from a bundle
// of its own: `cargo xtask bundle-voice`.
#[cfg(feature = "voice-only")]
nice_plug::nice_export_clap!(ContinuoVoice);
#[cfg(feature = "voice-only")]
nice_plug::nice_export_vst3!(ContinuoVoice);
