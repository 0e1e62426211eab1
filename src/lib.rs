//! Continuo
pub mod dsp;
