//! Equal-power crossfade between the wet (worker) signal and the delay-compensated dry signal.

use std::f32::consts::FRAC_PI_2;

/// Gains applied to the two signals for one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FadeGains {
    /// Gain on the wet signal.
    pub wet: f32,
    /// Gain on the dry signal.
    pub dry: f32,
}

/// A click-free switch between wet and dry: each sample moves one step towards the requested
/// side along an equal-power (sin/cos) curve, so a full fade takes `length` samples.
/// Equal power keeps loudness steady for the uncorrelated signals a timbre model produces.
///
/// # Examples
/// ```
/// use continuo::engine::crossfade::Crossfade;
///
/// let mut fade = Crossfade::new(4); // starts fully wet
/// let gains: Vec<f32> = (0..4).map(|_| fade.next(false).wet).collect();
/// assert_eq!(gains.last(), Some(&0.0)); // fully dry after 4 samples
/// assert!(gains.windows(2).all(|pair| pair[1] < pair[0]));
/// ```
pub struct Crossfade {
    /// `(wet, dry)` gains for every position, computed once so `next` does no trigonometry.
    table: Vec<(f32, f32)>,
    position: usize,
}

impl Crossfade {
    /// A crossfade of `length` samples (at least 1), starting fully wet.
    pub fn new(length: usize) -> Self {
        let length = length.max(1);
        let table = (0..=length)
            .map(|step| {
                let angle = FRAC_PI_2 * step as f32 / length as f32;
                (angle.sin(), angle.cos())
            })
            .collect();
        Self {
            table,
            position: length,
        }
    }

    /// Samples a full fade takes.
    pub fn length(&self) -> usize {
        self.table.len() - 1
    }

    /// Jumps to fully wet (`true`) or fully dry.
    pub fn set(&mut self, wet: bool) {
        self.position = if wet { self.length() } else { 0 };
    }

    /// Whether the fade is resting fully wet.
    pub fn is_wet(&self) -> bool {
        self.position == self.length()
    }

    /// Advances one sample towards wet (`true`) or dry and returns that sample's gains.
    pub fn next(&mut self, towards_wet: bool) -> FadeGains {
        if towards_wet {
            self.position = (self.position + 1).min(self.length());
        } else {
            self.position = self.position.saturating_sub(1);
        }
        let (wet, dry) = self.table[self.position];
        FadeGains { wet, dry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_fade_takes_length_samples_and_keeps_power() {
        let mut fade = Crossfade::new(10);
        assert!(fade.is_wet());
        let mut last = FadeGains { wet: 1.0, dry: 0.0 };
        for _ in 0..10 {
            last = fade.next(false);
            assert!((last.wet * last.wet + last.dry * last.dry - 1.0).abs() < 1e-6);
        }
        assert_eq!(last, FadeGains { wet: 0.0, dry: 1.0 });
        assert_eq!(fade.next(false), FadeGains { wet: 0.0, dry: 1.0 });
        for _ in 0..10 {
            last = fade.next(true);
        }
        assert!(fade.is_wet());
        assert!((last.wet - 1.0).abs() < 1e-6 && last.dry.abs() < 1e-6);
    }
}
