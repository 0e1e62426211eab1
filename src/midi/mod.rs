//! MIDI for Continuo Phrase and its trainer: files, tempo, tokens, baselines and keys.
//!
//! This layer sits between `dsp` and the model layer. It has no plugin, engine or ML
//! dependencies, so the trainer, the CLI and the plugin all call the very same code and the
//! token vocabulary cannot drift between training and serving.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`file`](mod@file) | Standard MIDI files (type 0 and 1) to a [`Song`] of [`Note`]s in beats, and back |
//! | [`tempo`] | [`TempoMap`]: beats ↔ seconds through any number of tempo changes |
//! | [`tokenizer`] | The versioned event vocabulary ([`VOCAB_VERSION`]) and a streaming decoder |
//! | [`ngram`] | Unigram and interpolated Kneser–Ney 4-gram baselines for evaluation |
//! | [`key`] | Krumhansl–Schmuckler key detection and scales for key lock |
//!
//! Guarantees, in plain words:
//! - All positions are in **beats** (quarter notes), as the host reports them, never in ticks or
//!   seconds; [`TempoMap`] converts to seconds when needed.
//! - Reading a file never panics, whatever its bytes; every failure is a [`MidiError`] that
//!   names the file and the problem.
//! - Decoding tokens never panics, whatever the token ids, and only produces valid notes
//!   (pitch 0–127, `end_beat > start_beat`, velocity 1–127). Ill-formed groups are skipped.
//! - Nothing here allocates on a path documented as realtime, because nothing here is meant for
//!   the audio thread: the worker thread owns tokenization and decoding.
//!
//! # Examples
//!
//! ```
//! use continuo::midi::{EncodeOptions, DecodeOptions, EventTokenizer, Note, Tokenizer};
//!
//! let notes = [Note::new(60, 100, 0, 0.0, 1.0), Note::new(64, 90, 0, 1.0, 1.5)];
//! let tokenizer = EventTokenizer::new();
//! let tokens = tokenizer.encode(&notes, &EncodeOptions::default());
//! let decoded = tokenizer.decode(&tokens, &DecodeOptions::default());
//! assert_eq!(decoded.len(), 2);
//! assert_eq!(decoded[1].start_beat, 1.0);
//! ```
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod file;
pub mod key;
pub mod ngram;
mod note;
pub mod tempo;
pub mod tokenizer;

pub use file::{read, write, write_with_tempo_map, MidiError, Song, Track};
pub use key::{detect_key, Key, Mode, Scale};
pub use note::Note;
pub use tempo::TempoMap;
pub use tokenizer::{
    token_kind, DecodeOptions, DecodeState, EncodeOptions, EventTokenizer, TokenKind, Tokenizer,
    VOCAB_VERSION,
};

#[cfg(test)]
mod tests;
