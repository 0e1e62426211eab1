//! Continuo Phrase's musical side: capturing what is played on the track in host beats (MIDI,
//! or audio through the listener), reading what it is (texture, key, range, pace) and
//! generating its continuation with a token model, played back sample-accurately.

pub mod engine;
pub mod generate;
pub mod history;
pub mod listener;
pub mod metre;
pub mod player;
pub mod roll;
pub mod texture;
pub mod trigger;
