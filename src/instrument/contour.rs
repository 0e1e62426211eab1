//! What a note asks the timbre decoder for, frame by frame: a loudness contour (attack, decay,
//! sustain and release in dB, the peak set by velocity) and an f0 (glide, vibrato, bend).
//!
//! The decoder learned how an instrument sounds *at a loudness and pitch*, from the A-weighted
//! loudness and f0 of real performances; a note is only convincing if its contour looks like
//! what the decoder saw. So the contour is in the features' own units (A-weighted dB) and the
//! velocity scale is anchored to the level the default models were trained at.

use crate::style::features::LOUDNESS_MIN_DB;

use super::settings::VoiceSettings;

/// Loudness of a velocity-127 note, A-weighted dB. The default models' renders are all
/// normalised to one level; their voiced frames span −41 … −22 dB (2nd–98th percentile of the
/// violin training set) for velocities 45 … 115, which General MIDI's curve at this anchor
/// reproduces: 45 → −38 dB, 115 → −22 dB.
pub const FULL_VELOCITY_DB: f32 = -20.0;
/// The contour's floor: the features' own (silence to the model).
pub const SILENT_DB: f32 = LOUDNESS_MIN_DB;
/// A release ends this far below the level it started from.
const RELEASE_DEPTH_DB: f32 = 60.0;
/// The quietest peak any velocity asks for.
const LOWEST_PEAK_DB: f32 = -70.0;
/// Vibrato fades in over this long after the note starts (a player's vibrato grows).
const VIBRATO_ONSET_MS: f32 = 300.0;

/// Peak loudness of a note of `velocity` (0–1) with `dynamics_db` per tenfold velocity;
/// rises monotonically with velocity down to a floor of −70 dB.
pub fn velocity_db(velocity: f32, dynamics_db: f32) -> f32 {
    let v = if velocity.is_finite() {
        velocity.clamp(1.0 / 127.0, 1.0)
    } else {
        1.0
    };
    (FULL_VELOCITY_DB + dynamics_db * v.log10()).max(LOWEST_PEAK_DB)
}

/// Where a note's loudness contour is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Rising to the peak (linear in amplitude, like a bow or breath setting in).
    Attack,
    /// Falling from the peak to the sustain level (linear in dB).
    Decay,
    /// Holding the sustain level.
    Sustain,
    /// Falling by [`RELEASE_DEPTH_DB`] over the release time (linear in dB).
    Release,
    /// Silent: the voice is free.
    Done,
}

/// A note's loudness contour; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    stage: Stage,
    /// Loudness of the last frame, dB.
    level_db: f32,
    peak_db: f32,
    /// Time spent in the current stage, ms.
    elapsed_ms: f32,
    /// Level the current stage started from, dB.
    from_db: f32,
}

impl Default for Envelope {
    fn default() -> Self {
        Self {
            stage: Stage::Done,
            level_db: SILENT_DB,
            peak_db: SILENT_DB,
            elapsed_ms: 0.0,
            from_db: SILENT_DB,
        }
    }
}

impl Envelope {
    /// Starts a note peaking at `peak_db`, attacking from the current level (a retriggered
    /// voice does not drop to silence first).
    pub fn trigger(&mut self, peak_db: f32) {
        self.stage = Stage::Attack;
        self.peak_db = peak_db;
        self.from_db = self.level_db;
        self.elapsed_ms = 0.0;
    }

    /// Lets the note go: the level falls from where it is.
    pub fn release(&mut self) {
        if !matches!(self.stage, Stage::Release | Stage::Done) {
            self.stage = Stage::Release;
            self.from_db = self.level_db;
            self.elapsed_ms = 0.0;
        }
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The last frame's level, dB.
    pub fn level_db(&self) -> f32 {
        self.level_db
    }

    /// Advances by one frame of `frame_ms` and returns its level, dB.
    pub fn next(&mut self, frame_ms: f32, settings: &VoiceSettings) -> f32 {
        self.elapsed_ms += frame_ms;
        let sustain_db = self.peak_db + settings.sustain_db;
        self.level_db = match self.stage {
            Stage::Attack => {
                let t = (self.elapsed_ms / settings.attack_ms).min(1.0);
                let (from, to) = (db_to_amplitude(self.from_db), db_to_amplitude(self.peak_db));
                if t >= 1.0 {
                    self.enter(Stage::Decay, self.peak_db);
                }
                amplitude_to_db(from + t * (to - from))
            }
            Stage::Decay => {
                let t = (self.elapsed_ms / settings.decay_ms).min(1.0);
                if t >= 1.0 {
                    self.enter(Stage::Sustain, sustain_db);
                }
                self.from_db + t * (sustain_db - self.from_db)
            }
            Stage::Sustain => sustain_db,
            Stage::Release => {
                let fallen = RELEASE_DEPTH_DB * self.elapsed_ms / settings.release_ms;
                let level = self.from_db - fallen;
                if fallen >= RELEASE_DEPTH_DB || level <= SILENT_DB {
                    self.enter(Stage::Done, SILENT_DB);
                }
                level.max(SILENT_DB)
            }
            Stage::Done => SILENT_DB,
        };
        self.level_db
    }

    fn enter(&mut self, stage: Stage, from_db: f32) {
        self.stage = stage;
        self.from_db = from_db;
        self.elapsed_ms = 0.0;
    }
}

fn db_to_amplitude(db: f32) -> f32 {
    if db <= SILENT_DB {
        0.0
    } else {
        10f32.powf(db / 20.0)
    }
}

fn amplitude_to_db(amplitude: f32) -> f32 {
    (20.0 * amplitude.max(1e-9).log10()).max(SILENT_DB)
}

/// A note's pitch in (fractional) MIDI note numbers: glide towards the target, vibrato, bend.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NotePitch {
    current: f32,
    target: f32,
    vibrato_phase: f32,
    age_ms: f32,
}

impl NotePitch {
    /// Starts a note at `pitch`, there at once.
    pub fn start(&mut self, pitch: f32) {
        self.current = pitch;
        self.target = pitch;
        self.vibrato_phase = 0.0;
        self.age_ms = 0.0;
    }

    /// Glides to `pitch` without restarting the note (legato).
    pub fn retarget(&mut self, pitch: f32) {
        self.target = pitch;
    }

    /// Where the glide is now (without vibrato or bend).
    pub fn current(&self) -> f32 {
        self.current
    }

    /// Advances by one frame of `frame_ms` and returns its pitch with vibrato and `bend_st`.
    pub fn next(&mut self, frame_ms: f32, settings: &VoiceSettings, bend_st: f32) -> f32 {
        self.age_ms += frame_ms;
        self.current = if settings.glide_ms <= 0.0 {
            self.target
        } else {
            let k = 1.0 - (-frame_ms / settings.glide_ms).exp();
            self.current + k * (self.target - self.current)
        };
        self.vibrato_phase = (self.vibrato_phase
            + std::f32::consts::TAU * settings.vibrato_hz * frame_ms / 1000.0)
            % std::f32::consts::TAU;
        let onset = (self.age_ms / VIBRATO_ONSET_MS).min(1.0);
        let vibrato = settings.vibrato_cents / 100.0 * onset * self.vibrato_phase.sin();
        self.current + vibrato + bend_st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_MS: f32 = 4.0;

    #[test]
    fn velocity_level_rises_monotonically_and_is_anchored() {
        let levels: Vec<f32> = (1..=127)
            .map(|v| velocity_db(v as f32 / 127.0, 40.0))
            .collect();
        // Strictly rising until the quietest velocities meet the floor (v < 8 at 40 dB).
        assert!(levels.windows(2).all(|w| w[1] >= w[0]), "{levels:?}");
        assert!(levels[9..].windows(2).all(|w| w[1] > w[0]), "{levels:?}");
        assert_eq!(velocity_db(1.0, 40.0), FULL_VELOCITY_DB);
        assert!((velocity_db(45.0 / 127.0, 40.0) + 38.0).abs() < 0.1);
        assert_eq!(velocity_db(0.3, 0.0), FULL_VELOCITY_DB);
        assert_eq!(velocity_db(f32::NAN, 40.0), FULL_VELOCITY_DB);
    }

    #[test]
    fn envelope_attacks_decays_sustains_and_releases_in_time() {
        let settings = VoiceSettings {
            attack_ms: 40.0,
            decay_ms: 100.0,
            sustain_db: -6.0,
            release_ms: 200.0,
            ..VoiceSettings::default()
        };
        let mut env = Envelope::default();
        env.trigger(-20.0);
        let levels: Vec<f32> = (0..60).map(|_| env.next(FRAME_MS, &settings)).collect();
        assert!(levels[..10].windows(2).all(|w| w[1] > w[0]), "attack rises");
        assert!(
            (levels[9] + 20.0).abs() < 1e-4,
            "peak after 40 ms: {}",
            levels[9]
        );
        assert!(
            (levels[34] + 26.0).abs() < 1e-3,
            "sustain after 100 ms more"
        );
        assert_eq!(env.stage(), Stage::Sustain);
        env.release();
        let frames = (0..100)
            .take_while(|_| {
                env.next(FRAME_MS, &settings);
                env.stage() != Stage::Done
            })
            .count();
        // −26 dB falls to the −80 dB floor (54 dB) at 60 dB per 200 ms: 180 ms = 45 frames.
        assert!((44..=46).contains(&frames), "{frames} frames");
        assert_eq!(env.level_db(), SILENT_DB);
    }

    #[test]
    fn pitch_glides_and_vibrato_stays_within_its_depth() {
        let mut settings = VoiceSettings {
            glide_ms: 50.0,
            ..VoiceSettings::default()
        };
        let mut pitch = NotePitch::default();
        pitch.start(60.0);
        pitch.retarget(72.0);
        let first = pitch.next(FRAME_MS, &settings, 0.0);
        assert!(first > 60.0 && first < 62.0, "{first}");
        for _ in 0..200 {
            pitch.next(FRAME_MS, &settings, 0.0);
        }
        assert!((pitch.current() - 72.0).abs() < 1e-3);
        settings.vibrato_cents = 30.0;
        let bent: Vec<f32> = (0..500)
            .map(|_| pitch.next(FRAME_MS, &settings, 2.0))
            .collect();
        let (lo, hi) = bent
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
        assert!(
            lo >= 73.7 - 1e-3 && hi <= 74.3 + 1e-3 && hi - lo > 0.5,
            "{lo}…{hi}"
        );
    }
}
