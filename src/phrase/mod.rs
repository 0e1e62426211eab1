//! Continuo Phrase's musical side: capturing what is played on the track, in host beats.
//! (Generation arrives with the continuation model.)

pub mod engine;
pub mod generate;
pub mod history;
pub mod listener;
pub mod metre;
pub mod player;
pub mod texture;
pub mod trigger;
