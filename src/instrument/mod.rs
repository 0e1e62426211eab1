//! Continuo Voice: an instrument that plays MIDI notes with the timbre models.
//!
//! ```text
//! note ─► contour (velocity → peak, attack/decay/sustain/release in dB) ─┐
//!      └► pitch (glide, vibrato, bend, transpose) ───────────────────────┴► FeatureNormalizer
//!   ─► StyleDecoder (styles A ↔ B, the note's own decoder state) ─► HostRenderer (host rate)
//! ```
//! Each note is a monophonic line through the same decoder and synthesiser as Continuo Style;
//! only where the f0 and loudness come from differs (a note instead of the analysis).
//! - [`settings`]: the controls and their ranges (one source of truth).
//! - [`contour`]: what a note asks the decoder for, frame by frame.
//! - [`processor`]: voices, stealing, mono/legato and model switches on the engine's worker.
//! - [`engine`]: the instrument on the real-time engine (plugin, CLI and tests drive the same).

pub mod contour;
pub mod engine;
mod note_voice;
pub mod processor;
pub mod settings;

pub use engine::{load_bank, notes_from_song, render_notes, InstrumentEngine, ScheduledNote};
pub use note_voice::FRAME_MS;
pub use processor::{
    note_queue, InstrumentProcessor, InstrumentStats, NoteAction, NoteSender, TimedNote, VoiceBank,
};
pub use settings::{PlayMode, SharedVoiceSettings, VoiceSettings};
