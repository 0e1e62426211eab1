//! Continuo
pub mod dsp;
pub mod engine;
pub mod phrase;
pub mod style;
