//! The Voice instrument's controls: ranges (one source of truth for the plugin, the CLI and
//! the tests) and the lock-free copy the worker reads.

use std::sync::atomic::{AtomicU32, Ordering};

use atomic_float::AtomicF32;

use crate::style::controls::{ParamSpec, StyleSettings};

/// Time from note-on to the peak level.
pub const ATTACK: ParamSpec = ParamSpec {
    min: 1.0,
    max: 2000.0,
    default: 40.0,
    step: None,
    unit: " ms",
};
/// Time the level takes to fall from the peak to the sustain level.
pub const DECAY: ParamSpec = ParamSpec {
    min: 1.0,
    max: 5000.0,
    default: 300.0,
    step: None,
    unit: " ms",
};
/// Held level relative to the peak.
pub const SUSTAIN: ParamSpec = ParamSpec {
    min: -40.0,
    max: 0.0,
    default: -4.0,
    step: None,
    unit: " dB",
};
/// Time the level takes to fall by 60 dB after note-off.
pub const RELEASE: ParamSpec = ParamSpec {
    min: 10.0,
    max: 5000.0,
    default: 250.0,
    step: None,
    unit: " ms",
};
/// dB per tenfold velocity: 40 is General MIDI's curve (level ∝ velocity²), 0 plays every
/// velocity at full level.
pub const DYNAMICS: ParamSpec = ParamSpec {
    min: 0.0,
    max: 60.0,
    default: 40.0,
    step: None,
    unit: " dB",
};
/// Portamento time constant (mono and legato modes; 0 jumps).
pub const GLIDE: ParamSpec = ParamSpec {
    min: 0.0,
    max: 2000.0,
    default: 0.0,
    step: None,
    unit: " ms",
};
/// Vibrato depth, cents either side.
pub const VIBRATO_DEPTH: ParamSpec = ParamSpec {
    min: 0.0,
    max: 100.0,
    default: 0.0,
    step: None,
    unit: " ct",
};
/// Vibrato rate.
pub const VIBRATO_RATE: ParamSpec = ParamSpec {
    min: 0.5,
    max: 12.0,
    default: 5.5,
    step: None,
    unit: " Hz",
};
/// Pitch-bend range, semitones either side.
pub const BEND_RANGE: ParamSpec = ParamSpec {
    min: 0.0,
    max: 24.0,
    default: 2.0,
    step: Some(1.0),
    unit: " st",
};
/// Most notes sounding at once in poly mode.
pub const POLYPHONY: ParamSpec = ParamSpec {
    min: 1.0,
    max: MAX_POLYPHONY as f32,
    default: MAX_POLYPHONY as f32,
    step: Some(1.0),
    unit: "",
};

/// The instrument plays at most this many notes at once (the models are monophonic: each
/// note runs its own decoder state).
pub const MAX_POLYPHONY: usize = 8;

/// How notes share the instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayMode {
    /// Up to [`POLYPHONY`] notes, each its own voice; the oldest is stolen (faded) beyond.
    #[default]
    Poly,
    /// One voice, retriggered by every note, gliding from the last pitch; releasing the top
    /// note returns to the one held under it.
    Mono,
    /// One voice; a note played while another is held glides to it without a new attack.
    Legato,
}

impl PlayMode {
    fn index(self) -> u32 {
        match self {
            Self::Poly => 0,
            Self::Mono => 1,
            Self::Legato => 2,
        }
    }

    fn from_index(index: u32) -> Self {
        match index {
            1 => Self::Mono,
            2 => Self::Legato,
            _ => Self::Poly,
        }
    }
}

/// Everything the instrument's worker reads, in the units shown to the user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceSettings {
    /// The controls shared with Continuo Style (pitch, octave, balance, brightness, morph; the
    /// input gain and gate do not apply to notes).
    pub style: StyleSettings,
    /// [`ATTACK`], ms.
    pub attack_ms: f32,
    /// [`DECAY`], ms.
    pub decay_ms: f32,
    /// [`SUSTAIN`], dB.
    pub sustain_db: f32,
    /// [`RELEASE`], ms.
    pub release_ms: f32,
    /// [`DYNAMICS`], dB per decade of velocity.
    pub dynamics_db: f32,
    /// [`GLIDE`], ms.
    pub glide_ms: f32,
    /// [`VIBRATO_DEPTH`], cents.
    pub vibrato_cents: f32,
    /// [`VIBRATO_RATE`], Hz.
    pub vibrato_hz: f32,
    /// [`BEND_RANGE`], semitones.
    pub bend_range_st: f32,
    /// [`POLYPHONY`] (poly mode).
    pub polyphony: usize,
    /// How notes share the voices.
    pub mode: PlayMode,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            style: StyleSettings::default(),
            attack_ms: ATTACK.default,
            decay_ms: DECAY.default,
            sustain_db: SUSTAIN.default,
            release_ms: RELEASE.default,
            dynamics_db: DYNAMICS.default,
            glide_ms: GLIDE.default,
            vibrato_cents: VIBRATO_DEPTH.default,
            vibrato_hz: VIBRATO_RATE.default,
            bend_range_st: BEND_RANGE.default,
            polyphony: MAX_POLYPHONY,
            mode: PlayMode::Poly,
        }
    }
}

impl VoiceSettings {
    /// Every value clamped to its range; a non-finite one becomes its default.
    pub fn sanitized(&self) -> Self {
        let pick = |value: f32, spec: ParamSpec| {
            if value.is_finite() {
                spec.clamp(value)
            } else {
                spec.default
            }
        };
        Self {
            style: self.style,
            attack_ms: pick(self.attack_ms, ATTACK),
            decay_ms: pick(self.decay_ms, DECAY),
            sustain_db: pick(self.sustain_db, SUSTAIN),
            release_ms: pick(self.release_ms, RELEASE),
            dynamics_db: pick(self.dynamics_db, DYNAMICS),
            glide_ms: pick(self.glide_ms, GLIDE),
            vibrato_cents: pick(self.vibrato_cents, VIBRATO_DEPTH),
            vibrato_hz: pick(self.vibrato_hz, VIBRATO_RATE),
            bend_range_st: pick(self.bend_range_st, BEND_RANGE),
            polyphony: self.polyphony.clamp(1, MAX_POLYPHONY),
            mode: self.mode,
        }
    }
}

/// [`VoiceSettings`] shared between the plugin (writer) and the worker (reader), lock-free.
#[derive(Debug)]
pub struct SharedVoiceSettings {
    /// The Style controls, shared with Continuo Style's own type.
    pub style: crate::style::SharedStyleSettings,
    values: [AtomicF32; 9],
    polyphony: AtomicU32,
    mode: AtomicU32,
}

impl Default for SharedVoiceSettings {
    fn default() -> Self {
        Self::new(&VoiceSettings::default())
    }
}

impl SharedVoiceSettings {
    /// Settings at `initial`.
    pub fn new(initial: &VoiceSettings) -> Self {
        let shared = Self {
            style: Default::default(),
            values: Default::default(),
            polyphony: AtomicU32::new(0),
            mode: AtomicU32::new(0),
        };
        shared.store(initial);
        shared
    }

    /// Publishes new values (real-time safe: relaxed stores).
    pub fn store(&self, s: &VoiceSettings) {
        self.style.store(&s.style);
        let values = [
            s.attack_ms,
            s.decay_ms,
            s.sustain_db,
            s.release_ms,
            s.dynamics_db,
            s.glide_ms,
            s.vibrato_cents,
            s.vibrato_hz,
            s.bend_range_st,
        ];
        for (slot, v) in self.values.iter().zip(values) {
            slot.store(v, Ordering::Relaxed);
        }
        self.polyphony.store(s.polyphony as u32, Ordering::Relaxed);
        self.mode.store(s.mode.index(), Ordering::Relaxed);
    }

    /// The latest values, sanitised.
    pub fn load(&self) -> VoiceSettings {
        let v = |i: usize| self.values[i].load(Ordering::Relaxed);
        VoiceSettings {
            style: self.style.load(),
            attack_ms: v(0),
            decay_ms: v(1),
            sustain_db: v(2),
            release_ms: v(3),
            dynamics_db: v(4),
            glide_ms: v(5),
            vibrato_cents: v(6),
            vibrato_hz: v(7),
            bend_range_st: v(8),
            polyphony: self.polyphony.load(Ordering::Relaxed) as usize,
            mode: PlayMode::from_index(self.mode.load(Ordering::Relaxed)),
        }
        .sanitized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_are_sanitised() {
        let wanted = VoiceSettings {
            attack_ms: 12.0,
            polyphony: 3,
            mode: PlayMode::Legato,
            vibrato_cents: f32::NAN,
            release_ms: 1e9,
            ..VoiceSettings::default()
        };
        let shared = SharedVoiceSettings::new(&wanted);
        let got = shared.load();
        assert_eq!(got.attack_ms, 12.0);
        assert_eq!(got.polyphony, 3);
        assert_eq!(got.mode, PlayMode::Legato);
        assert_eq!(got.vibrato_cents, VIBRATO_DEPTH.default);
        assert_eq!(got.release_ms, RELEASE.max);
        assert_eq!(
            SharedVoiceSettings::default().load(),
            VoiceSettings::default()
        );
    }
}
