//! The features every timbre model is trained on and run with: one definition, used by the
//! trainer (`crate::train::timbre`) and by Continuo Style's streaming voice.
//!
//! - Analysis at [`SAMPLE_RATE_HZ`] (16 kHz), hop [`HOP_SIZE`] (64 samples, 250 frames/s); the
//!   synthesis runs at whatever rate the audio is (training: `--synth-rate`; plugin: the host's).
//! - Per frame: [`crate::dsp::analysis`] with [`timbre_analysis_config`], normalised by
//!   [`FeatureNormalizer`]: `f0_norm = midi(f0_hz) / 127` with unvoiced frames holding the last
//!   voiced f0 (or `f0_min_hz` before any voiced frame), and
//!   `loudness_norm = clamp((loudness_db − min) / (max − min), 0, 1)`.

use crate::dsp::analysis::{AnalysisConfig, FrameFeatures};
use crate::model::FeatureConfig;

/// Analysis rate, Hz.
pub const SAMPLE_RATE_HZ: u32 = 16_000;
/// Samples per model frame.
pub const HOP_SIZE: usize = 64;
/// Model frames per second.
pub const FRAME_RATE_HZ: f32 = SAMPLE_RATE_HZ as f32 / HOP_SIZE as f32;

/// Lowest f0 searched unless a model was trained lower, Hz. 100 Hz keeps the pitch tracker's
/// look-ahead at 161 samples (10 ms at 16 kHz): its frame must hold two periods of the lowest f0.
pub const F0_MIN_HZ: f32 = 100.0;
/// The lowest f0 floor a model may be trained with (`continuo-train timbre --f0-min-hz`), Hz:
/// a cello's C2 is 65 Hz. Each halving of the floor doubles the tracker's look-ahead (50 Hz:
/// 20 ms), so only models that need it pay it.
pub const F0_FLOOR_LIMIT_HZ: f32 = 50.0;
/// Highest f0 searched, Hz (below the tracker's limit of a quarter of 16 kHz).
pub const F0_MAX_HZ: f32 = 2000.0;
/// Loudness mapped to 0 (A-weighted dB re a full-scale 1 kHz sine).
pub const LOUDNESS_MIN_DB: f32 = -80.0;
/// Loudness mapped to 1.
pub const LOUDNESS_MAX_DB: f32 = 0.0;
/// Loudness window, samples at 16 kHz (16 ms, 8 ms look-ahead): short enough for the plugin's
/// latency budget, long enough to average over a period at [`F0_MIN_HZ`].
pub const LOUDNESS_WINDOW: usize = 256;

/// The analysis settings of a timbre model trained down to `f0_floor_hz` (its manifest's
/// `features.f0_min_hz`): the plugin must analyse its (16 kHz) input with exactly these. Hop 64,
/// f0 `f0_floor_hz`–2000 Hz, YIN threshold 0.15, 256-sample loudness window, no onsets.
pub fn timbre_analysis_config(f0_floor_hz: f32) -> AnalysisConfig {
    AnalysisConfig {
        hop_size: HOP_SIZE,
        min_f0_hz: f0_floor_hz,
        max_f0_hz: F0_MAX_HZ,
        pitch_threshold: 0.15,
        loudness_window_size: Some(LOUDNESS_WINDOW),
        detect_onsets: false,
    }
}

/// The feature normalisation written into the manifest of a timbre model trained down to
/// `f0_floor_hz` (the trainer adds the training audio's level, `loudness_reference_db`).
pub fn timbre_feature_config(f0_floor_hz: f32) -> FeatureConfig {
    FeatureConfig {
        f0_min_hz: f0_floor_hz,
        f0_max_hz: F0_MAX_HZ,
        loudness_min_db: LOUDNESS_MIN_DB,
        loudness_max_db: LOUDNESS_MAX_DB,
        loudness_reference_db: None,
    }
}

/// Whether `f0_floor_hz` is a floor models may be trained with and Style can track:
/// [`F0_FLOOR_LIMIT_HZ`] up to an octave below [`F0_MAX_HZ`].
pub fn is_valid_f0_floor(f0_floor_hz: f32) -> bool {
    (F0_FLOOR_LIMIT_HZ..=F0_MAX_HZ / 2.0).contains(&f0_floor_hz)
}

pub use crate::dsp::hz_to_midi;

/// Turns analysis frames into model inputs, one frame at a time (streaming, so the plugin can
/// use the very same code): holds the last voiced f0 through unvoiced frames.
#[derive(Debug, Clone)]
pub struct FeatureNormalizer {
    /// The normalisation ranges (from the manifest).
    config: FeatureConfig,
    /// Last voiced f0, or `f0_min_hz` before any voiced frame.
    held_f0_hz: f32,
}

impl FeatureNormalizer {
    /// A normaliser at time zero.
    pub fn new(config: FeatureConfig) -> Self {
        let held_f0_hz = config.f0_min_hz;
        Self { config, held_f0_hz }
    }

    /// Back to time zero.
    pub fn reset(&mut self) {
        self.held_f0_hz = self.config.f0_min_hz;
    }

    /// `([f0_norm, loudness_norm], f0_hz)` for one frame; `f0_hz` is the held f0 the synth
    /// must be driven with.
    pub fn push(&mut self, frame: &FrameFeatures) -> ([f32; 2], f32) {
        let f0 = self.hold(frame);
        (self.normalize(f0, frame.loudness_db), f0)
    }

    /// The f0 the synth must be driven with for `frame`: its own when voiced, else the last
    /// voiced one.
    pub fn hold(&mut self, frame: &FrameFeatures) -> f32 {
        if frame.voicing >= 0.5 && frame.f0_hz.is_finite() && frame.f0_hz > 0.0 {
            self.held_f0_hz = frame.f0_hz;
        }
        self.held_f0_hz
    }

    /// The model input `[f0_norm, loudness_norm]` for an f0 and an A-weighted loudness: every
    /// caller (trainer, Style, the Voice instrument) normalises through here.
    pub fn normalize(&self, f0_hz: f32, loudness_db: f32) -> [f32; 2] {
        let range = (self.config.loudness_max_db - self.config.loudness_min_db).max(1e-6);
        let loudness = ((loudness_db - self.config.loudness_min_db) / range).clamp(0.0, 1.0);
        [hz_to_midi(f0_hz) / 127.0, loudness]
    }
}

/// Frames quieter than this (A-weighted dB) say nothing about how loud a player plays: breath,
/// room noise, the tails of notes.
pub const LEVEL_FLOOR_DB: f32 = -60.0;
/// The most Auto Level moves the model's loudness input, dB (the Input Gain's range).
pub const MAX_LEVEL_OFFSET_DB: f32 = 24.0;
/// Auto Level's memory: a plain running mean over the first this many counted frames (8 s),
/// an exponential mean with this time constant after.
const LEVEL_MEMORY_FRAMES: f32 = 8.0 * FRAME_RATE_HZ;
/// Weight of the model's own level before the player has been heard (0.1 s of frames), so the
/// first frames of a note (its attack, quieter than the note) cannot swing the offset.
const LEVEL_PRIOR_FRAMES: f32 = 0.1 * FRAME_RATE_HZ;

/// Whether a frame counts towards a player's level: voiced and above [`LEVEL_FLOOR_DB`].
pub fn counts_for_level(voicing: f32, loudness_db: f32) -> bool {
    voicing >= 0.5 && loudness_db >= LEVEL_FLOOR_DB
}

/// The mean loudness (dB) of the frames that [count](counts_for_level), `None` if none does:
/// what the trainer records as a model's `loudness_reference_db`, and what [`LevelMatcher`]
/// estimates live.
pub fn mean_level_db(frames: impl IntoIterator<Item = (f32, f32)>) -> Option<f32> {
    let (sum, count) = frames
        .into_iter()
        .filter(|&(voicing, loudness_db)| counts_for_level(voicing, loudness_db))
        .fold((0.0f64, 0u64), |(sum, count), (_, l)| {
            (sum + f64::from(l), count + 1)
        });
    (count > 0).then(|| (sum / count as f64) as f32)
}

/// Auto Level: how many dB to add to the loudness a model hears so that the player's level
/// meets the level of the model's training audio. Timbre models learn how an instrument's
/// colour changes with loudness, so without it a player recording 12 dB quieter than the
/// training data would hear a darker, softer instrument, and a hotter one a brighter one.
///
/// It follows the player's mean level ([`mean_level_db`] over the frames heard so far: a plain
/// mean for the first 8 s, then an exponential one), so dynamics within a phrase reach the
/// model unchanged; only the long-term level is matched. Real-time safe (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct LevelMatcher {
    /// The training audio's mean level; `None` for a model that did not record it.
    reference_db: Option<f32>,
    estimate_db: f32,
    frames: f32,
}

impl LevelMatcher {
    /// A matcher towards `reference_db` (a manifest's `features.loudness_reference_db`).
    pub fn new(reference_db: Option<f32>) -> Self {
        let reference_db = reference_db.filter(|r| r.is_finite());
        Self {
            reference_db,
            estimate_db: reference_db.unwrap_or(0.0),
            frames: 0.0,
        }
    }

    /// Whether the model recorded its training level (without it there is nothing to match).
    pub fn is_available(&self) -> bool {
        self.reference_db.is_some()
    }

    /// Forgets the player's level.
    pub fn reset(&mut self) {
        *self = Self::new(self.reference_db);
    }

    /// Hears one frame of the player's input (before any Input Gain).
    pub fn observe(&mut self, voicing: f32, loudness_db: f32) {
        if self.reference_db.is_none() || !counts_for_level(voicing, loudness_db) {
            return;
        }
        self.frames = (self.frames + 1.0).min(LEVEL_MEMORY_FRAMES);
        let weight = 1.0 / (self.frames + LEVEL_PRIOR_FRAMES).min(LEVEL_MEMORY_FRAMES);
        self.estimate_db += weight * (loudness_db - self.estimate_db);
    }

    /// dB to add to the model's loudness input: the training level minus the player's, within
    /// ±[`MAX_LEVEL_OFFSET_DB`]; 0 without a reference.
    pub fn offset_db(&self) -> f32 {
        self.reference_db.map_or(0.0, |r| {
            (r - self.estimate_db).clamp(-MAX_LEVEL_OFFSET_DB, MAX_LEVEL_OFFSET_DB)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normaliser_holds_f0_and_clamps_loudness() {
        let mut n = FeatureNormalizer::new(timbre_feature_config(F0_MIN_HZ));
        let frame = |f0_hz, voicing, loudness_db| FrameFeatures {
            time_s: 0.0,
            f0_hz,
            voicing,
            loudness_db,
            rms_db: 0.0,
        };
        let (x, f0) = n.push(&frame(300.0, 0.1, -120.0));
        assert_eq!(f0, F0_MIN_HZ);
        assert_eq!(x[1], 0.0);
        let (x, f0) = n.push(&frame(440.0, 0.9, -40.0));
        assert_eq!(f0, 440.0);
        assert!((x[0] - 69.0 / 127.0).abs() < 1e-6 && (x[1] - 0.5).abs() < 1e-6);
        let (_, f0) = n.push(&frame(100.0, 0.2, 10.0));
        assert_eq!(f0, 440.0);
    }

    #[test]
    fn mean_level_counts_voiced_frames_above_the_floor() {
        let frames = [(0.9, -20.0), (0.9, -30.0), (0.2, -5.0), (0.9, -70.0)];
        assert_eq!(mean_level_db(frames), Some(-25.0));
        assert_eq!(mean_level_db([(0.1, -20.0)]), None);
    }

    #[test]
    fn auto_level_learns_a_quiet_players_level_and_keeps_their_dynamics() {
        let mut matcher = LevelMatcher::new(Some(-30.0));
        assert_eq!(matcher.offset_db(), 0.0, "nothing heard yet: no change");
        // One second of a player 12 dB below the training level, swelling ±3 dB.
        for i in 0..250 {
            let swell = 3.0 * (i as f32 / 40.0).sin();
            matcher.observe(0.9, -42.0 + swell);
        }
        let after_1s = matcher.offset_db();
        assert!((after_1s - 12.0).abs() < 1.5, "{after_1s}");
        // A minute later one loud note barely moves it: the offset is the long-term level.
        for _ in 0..15_000 {
            matcher.observe(0.9, -42.0);
        }
        let settled = matcher.offset_db();
        assert!((settled - 12.0).abs() < 0.01, "{settled}");
        for _ in 0..25 {
            matcher.observe(0.9, -20.0);
        }
        assert!((matcher.offset_db() - settled).abs() < 0.5);
        // Silence, breath and unvoiced frames are not the player's level.
        let before = matcher.offset_db();
        for _ in 0..1000 {
            matcher.observe(0.9, -75.0);
            matcher.observe(0.1, -30.0);
        }
        assert_eq!(matcher.offset_db(), before);
        // Clamped to the Input Gain's range; nothing to match without a reference.
        let mut whisper = LevelMatcher::new(Some(-20.0));
        for _ in 0..5000 {
            whisper.observe(0.9, -59.0);
        }
        assert_eq!(whisper.offset_db(), MAX_LEVEL_OFFSET_DB);
        let mut old_model = LevelMatcher::new(None);
        old_model.observe(0.9, -50.0);
        assert!(!old_model.is_available());
        assert_eq!(old_model.offset_db(), 0.0);
        matcher.reset();
        assert_eq!(matcher.offset_db(), 0.0);
    }
}
