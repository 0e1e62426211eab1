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

/// Lowest f0 searched, Hz. 100 Hz keeps the pitch tracker's look-ahead at 161 samples
/// (10 ms at 16 kHz): its frame must hold two periods of the lowest f0.
pub const F0_MIN_HZ: f32 = 100.0;
/// Highest f0 searched, Hz (below the tracker's limit of a quarter of 16 kHz).
pub const F0_MAX_HZ: f32 = 2000.0;
/// Loudness mapped to 0 (A-weighted dB re a full-scale 1 kHz sine).
pub const LOUDNESS_MIN_DB: f32 = -80.0;
/// Loudness mapped to 1.
pub const LOUDNESS_MAX_DB: f32 = 0.0;
/// Loudness window, samples at 16 kHz (16 ms, 8 ms look-ahead): short enough for the plugin's
/// latency budget, long enough to average over a period at [`F0_MIN_HZ`].
pub const LOUDNESS_WINDOW: usize = 256;

/// The analysis settings of timbre models: the plugin must analyse its (16 kHz) input with
/// exactly these. Hop 64, f0 100–2000 Hz, YIN threshold 0.15, 256-sample loudness window, no
/// onsets.
pub fn timbre_analysis_config() -> AnalysisConfig {
    AnalysisConfig {
        hop_size: HOP_SIZE,
        min_f0_hz: F0_MIN_HZ,
        max_f0_hz: F0_MAX_HZ,
        pitch_threshold: 0.15,
        loudness_window_size: Some(LOUDNESS_WINDOW),
        detect_onsets: false,
    }
}

/// The feature normalisation written into every timbre manifest.
pub fn timbre_feature_config() -> FeatureConfig {
    FeatureConfig {
        f0_min_hz: F0_MIN_HZ,
        f0_max_hz: F0_MAX_HZ,
        loudness_min_db: LOUDNESS_MIN_DB,
        loudness_max_db: LOUDNESS_MAX_DB,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normaliser_holds_f0_and_clamps_loudness() {
        let mut n = FeatureNormalizer::new(timbre_feature_config());
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
}
