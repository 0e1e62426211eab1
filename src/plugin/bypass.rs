//! The host's bypass as a click-free fade, shared by the plugins that make audio.

use nice_plug::prelude::{Smoother, SmoothingStyle};

/// 0 = processing, 1 = bypassed, ramped over 20 ms so switching never clicks.
pub struct BypassFade {
    fade: Smoother<f32>,
    /// Where the fade is heading.
    bypassed: bool,
    sample_rate: f32,
}

impl Default for BypassFade {
    fn default() -> Self {
        Self {
            fade: Smoother::new(SmoothingStyle::Linear(20.0)),
            bypassed: false,
            sample_rate: 48_000.0,
        }
    }
}

impl BypassFade {
    /// The rate the ramp is timed at (from `activate`).
    pub fn set_sample_rate(&mut self, sample_rate: f32) {
        self.sample_rate = sample_rate;
    }

    /// Jumps to `bypassed`, no ramp (the plugin's `reset`).
    pub fn reset(&mut self, bypassed: bool) {
        self.bypassed = bypassed;
        self.fade.reset(if bypassed { 1.0 } else { 0.0 });
    }

    /// Heads for `bypassed`. Only a change starts a ramp: a ramp restarted every block would
    /// never arrive (bypassed audio must be exactly the bypass signal). Real-time safe.
    pub fn follow(&mut self, bypassed: bool) {
        if bypassed != self.bypassed {
            let target = if bypassed { 1.0 } else { 0.0 };
            self.fade.set_target(self.sample_rate, target);
            self.bypassed = bypassed;
        }
    }

    /// The fade's next sample.
    pub fn next(&self) -> f32 {
        self.fade.next()
    }
}
