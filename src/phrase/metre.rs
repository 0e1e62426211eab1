//! Bars as the host counts them, and as the continuation model sees them.
//!
//! The token vocabulary holds bars of at most [`MAX_BAR_STEPS`] grid steps (8 quarter notes).
//! Longer bars (12/4, 15/8, 32/4, …) are cut into equal model bars that fit, so that every
//! host bar line is also a model bar line and generated phrases keep the host's bars.

use crate::midi::tokenizer::{MAX_BAR_STEPS, STEPS_PER_BEAT};

/// Longest bar accepted from a host, in quarter notes (32/4, 64/8); longer ones are clamped.
pub const MAX_BAR_BEATS: u32 = 32;
/// Shortest bar, in grid steps (a 1/16 bar).
const MIN_BAR_STEPS: u32 = 3;

/// A bar length, in whole steps of the model's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metre {
    bar_steps: u32,
}

impl Default for Metre {
    /// 4/4.
    fn default() -> Self {
        Self {
            bar_steps: 4 * STEPS_PER_BEAT,
        }
    }
}

impl Metre {
    /// The bar of a time signature (e.g. 12/4 = 12 quarter notes, 6/8 = 3); 4/4 when either
    /// number is not positive.
    pub fn from_time_signature(numerator: i32, denominator: i32) -> Self {
        if numerator <= 0 || denominator <= 0 {
            return Self::default();
        }
        Self::from_beats(f64::from(numerator) * 4.0 / f64::from(denominator))
    }

    /// A bar of `beats` quarter notes, rounded to the grid and kept between a sixteenth and
    /// [`MAX_BAR_BEATS`]; 4/4 when not finite or not positive.
    pub fn from_beats(beats: f64) -> Self {
        if !beats.is_finite() || beats <= 0.0 {
            return Self::default();
        }
        let steps = (beats * f64::from(STEPS_PER_BEAT)).round().clamp(
            f64::from(MIN_BAR_STEPS),
            f64::from(MAX_BAR_BEATS * STEPS_PER_BEAT),
        );
        Self {
            bar_steps: steps as u32,
        }
    }

    /// Quarter notes per bar.
    pub fn bar_beats(&self) -> f64 {
        f64::from(self.bar_steps) / f64::from(STEPS_PER_BEAT)
    }

    /// How many model bars one bar is cut into: the fewest equal parts that fit the vocabulary.
    pub fn model_bars_per_bar(&self) -> u32 {
        let fewest = self.bar_steps.div_ceil(MAX_BAR_STEPS);
        (fewest..=self.bar_steps)
            .find(|parts| self.bar_steps.is_multiple_of(*parts))
            .unwrap_or(self.bar_steps)
    }

    /// Quarter notes per model bar.
    pub fn model_bar_beats(&self) -> f64 {
        self.bar_beats() / f64::from(self.model_bars_per_bar())
    }

    /// The bar line at or before `beat`, bars counted from beat 0.
    pub fn bar_floor(&self, beat: f64) -> f64 {
        let bar = self.bar_beats();
        let floor = (beat / bar).floor() * bar;
        if floor.is_finite() {
            floor
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bars_keep_their_length_and_split_into_model_bars() {
        for (numerator, denominator, beats, parts) in [
            (4, 4, 4.0, 1),
            (6, 8, 3.0, 1),
            (8, 4, 8.0, 1),
            (9, 4, 9.0, 2),
            (12, 4, 12.0, 2),
            (17, 8, 8.5, 2),
            (13, 4, 13.0, 2),
            (32, 4, 32.0, 4),
            (37, 16, 9.25, 3),
        ] {
            let metre = Metre::from_time_signature(numerator, denominator);
            assert_eq!(metre.bar_beats(), beats, "{numerator}/{denominator}");
            assert_eq!(
                metre.model_bars_per_bar(),
                parts,
                "{numerator}/{denominator}"
            );
            let model_bar = metre.model_bar_beats();
            assert!(model_bar * 12.0 <= f64::from(MAX_BAR_STEPS));
            assert_eq!(
                (model_bar * 12.0).fract(),
                0.0,
                "{numerator}/{denominator}: model bars are whole grid steps"
            );
        }
        assert_eq!(Metre::from_time_signature(99, 4).bar_beats(), 32.0);
        assert_eq!(Metre::from_time_signature(0, 4).bar_beats(), 4.0);
        assert_eq!(Metre::from_time_signature(1, 64).bar_beats(), 0.25);
        assert_eq!(Metre::from_beats(f64::NAN), Metre::default());
    }

    #[test]
    fn bar_lines_follow_the_host_bar() {
        let metre = Metre::from_time_signature(12, 4);
        assert_eq!(metre.bar_floor(13.1), 12.0);
        assert_eq!(metre.bar_floor(11.9), 0.0);
        assert_eq!(metre.bar_floor(-0.5), -12.0);
    }
}
