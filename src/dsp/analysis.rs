//! Whole-signal feature analysis: the one function the CLI (`continuo analyze`) and the trainer
//! call, so both see exactly the features the plugins compute in streaming form.
//!
//! # Contract
//! - Input: a mono signal (sanitised), its sample rate, an [`AnalysisConfig`].
//! - Output: [`Analysis`] with `frame_rate = sample_rate / hop_size` and one [`FrameFeatures`] per
//!   hop, frame `i` centred on sample `i · hop_size` (`len / hop + 1` frames; latency of every
//!   tracker compensated), plus onset times in seconds. Serialisable with serde; `Display` prints
//!   a plain-text table.
//! - f0 from [`PitchTracker`], loudness and RMS from [`LoudnessMeter`], onsets from
//!   [`OnsetDetector`], each run through its offline helper (the same code as streaming).

use std::fmt;

use serde::Serialize;

use crate::dsp::loudness::{LoudnessConfig, LoudnessMeter};
use crate::dsp::onset::{OnsetConfig, OnsetDetector};
use crate::dsp::pitch::{PitchConfig, PitchTracker};
use crate::dsp::{check_sample_rate, DspError};

/// Settings for [`analyze`]; the sub-configs take their sample rate and hop from here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisConfig {
    /// Samples per feature frame.
    pub hop_size: usize,
    /// Lowest f0 searched.
    pub min_f0_hz: f32,
    /// Highest f0 searched (capped at a quarter of the sample rate).
    pub max_f0_hz: f32,
    /// YIN absolute threshold.
    pub pitch_threshold: f32,
    /// Loudness window; `None` picks [`LoudnessConfig::new`]'s default for the rate.
    pub loudness_window_size: Option<usize>,
    /// Detect onsets (they cost one more STFT pass).
    pub detect_onsets: bool,
}

impl Default for AnalysisConfig {
    /// Hop 256, 40–2000 Hz, threshold 0.15, default loudness window, onsets on.
    fn default() -> Self {
        Self {
            hop_size: 256,
            min_f0_hz: 40.0,
            max_f0_hz: 2000.0,
            pitch_threshold: 0.15,
            loudness_window_size: None,
            detect_onsets: true,
        }
    }
}

/// Features of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameFeatures {
    /// Centre of the frame, seconds from the start.
    pub time_s: f32,
    /// Fundamental frequency estimate (finite, in range even when unvoiced).
    pub f0_hz: f32,
    /// Voicing confidence in `[0, 1]`; ≥ 0.5 means voiced.
    pub voicing: f32,
    /// A-weighted loudness, dB re a full-scale 1 kHz sine (≥ −120).
    pub loudness_db: f32,
    /// RMS level, dBFS (≥ −120).
    pub rms_db: f32,
}

/// Result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Sample rate of the analysed signal.
    pub sample_rate_hz: f32,
    /// Feature frames per second (`sample_rate / hop_size`).
    pub frame_rate: f32,
    /// One entry per hop.
    pub frames: Vec<FrameFeatures>,
    /// Onset times, seconds from the start.
    pub onsets_s: Vec<f32>,
}

/// Computes the features of a whole signal; see the [module docs](self).
///
/// # Errors
/// Invalid sample rate, hop or f0 range (the f0 ceiling is first capped at `sample_rate / 4`).
///
/// # Examples
/// ```
/// use continuo::dsp::analysis::{analyze, AnalysisConfig};
/// let sr = 16000.0;
/// let tone: Vec<f32> = (0..8000)
///     .map(|n| 0.5 * (std::f32::consts::TAU * 220.0 * n as f32 / sr).sin())
///     .collect();
/// let analysis = analyze(&tone, sr, &AnalysisConfig { hop_size: 128, ..Default::default() }).unwrap();
/// assert_eq!(analysis.frames.len(), 8000 / 128 + 1);
/// let middle = analysis.frames[30];
/// assert!((middle.f0_hz - 220.0).abs() < 2.0 && middle.voicing > 0.5);
/// ```
pub fn analyze(
    signal: &[f32],
    sample_rate_hz: f32,
    config: &AnalysisConfig,
) -> Result<Analysis, DspError> {
    check_sample_rate(sample_rate_hz)?;
    let hop = config.hop_size;
    let pitch_config = PitchConfig {
        sample_rate_hz,
        hop_size: hop,
        min_f0_hz: config.min_f0_hz,
        max_f0_hz: config.max_f0_hz.min(sample_rate_hz / 4.0),
        threshold: config.pitch_threshold,
        ..PitchConfig::new(sample_rate_hz, hop)
    };
    let mut loudness_config = LoudnessConfig::new(sample_rate_hz, hop);
    if let Some(window_size) = config.loudness_window_size {
        loudness_config.window_size = window_size;
    }
    let pitch = PitchTracker::track(signal, pitch_config)?;
    let loudness = LoudnessMeter::measure(signal, loudness_config)?;
    let onsets_s = if config.detect_onsets {
        OnsetDetector::detect(signal, OnsetConfig::new(sample_rate_hz, hop))?
            .iter()
            .map(|o| o.time_s)
            .collect()
    } else {
        Vec::new()
    };
    let frames = pitch
        .iter()
        .zip(&loudness)
        .enumerate()
        .map(|(i, (p, l))| FrameFeatures {
            time_s: (i * hop) as f32 / sample_rate_hz,
            f0_hz: p.f0_hz,
            voicing: p.voicing,
            loudness_db: l.loudness_db,
            rms_db: l.rms_db,
        })
        .collect();
    Ok(Analysis {
        sample_rate_hz,
        frame_rate: sample_rate_hz / hop as f32,
        frames,
        onsets_s,
    })
}

impl fmt::Display for Analysis {
    /// A fixed-width table: one line per frame, onsets listed at the end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# {} frames at {:.3} frames/s ({} Hz)",
            self.frames.len(),
            self.frame_rate,
            self.sample_rate_hz
        )?;
        writeln!(
            f,
            "{:>9}  {:>9}  {:>7}  {:>11}  {:>8}",
            "time_s", "f0_hz", "voicing", "loudness_db", "rms_db"
        )?;
        for frame in &self.frames {
            writeln!(
                f,
                "{:>9.4}  {:>9.2}  {:>7.3}  {:>11.2}  {:>8.2}",
                frame.time_s, frame.f0_hz, frame.voicing, frame.loudness_db, frame.rms_db
            )?;
        }
        write!(f, "# onsets_s:")?;
        for onset in &self.onsets_s {
            write!(f, " {onset:.4}")?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_signals::{garbage_inputs, sine};

    #[test]
    fn features_of_two_notes() {
        let sr = 16000.0;
        let mut signal = vec![0.0f32; 4000];
        signal.extend(sine(220.0, 0.5, 16000.0, 8000));
        signal.extend(sine(440.0, 0.05, 16000.0, 8000));
        let config = AnalysisConfig {
            hop_size: 128,
            ..Default::default()
        };
        let analysis = analyze(&signal, sr, &config).unwrap();
        assert_eq!(analysis.frames.len(), signal.len() / 128 + 1);
        assert_eq!(analysis.frame_rate, 125.0);
        let at = |t: f32| analysis.frames[(t * 125.0) as usize];
        assert!(at(0.1).voicing < 0.5 && at(0.1).loudness_db == crate::dsp::DB_FLOOR);
        assert!((at(0.5).f0_hz - 220.0).abs() < 2.0 && at(0.5).voicing > 0.5);
        assert!((at(1.0).f0_hz - 440.0).abs() < 3.0 && at(1.0).voicing > 0.5);
        assert!((at(0.5).rms_db - (20.0 * (0.5f32).log10() - 3.01)).abs() < 0.2);
        assert!((at(0.5).rms_db - at(1.0).rms_db - 20.0).abs() < 0.3);
        // Onsets at 0.25 s (note 1) and 0.75 s (note 2 is quieter; a level drop is no onset,
        // but the pitch change is a spectral rise).
        assert!(analysis
            .onsets_s
            .iter()
            .any(|t| (t - 0.25).abs() <= 128.0 / sr));
        for frame in &analysis.frames {
            assert!(((frame.time_s * sr).round() as usize).is_multiple_of(128));
        }
        let table = analysis.to_string();
        assert!(table.lines().count() == analysis.frames.len() + 3);
    }

    #[test]
    fn serialises_to_json() {
        let signal = sine(330.0, 0.3, 16000.0, 1600);
        let analysis = analyze(&signal, 16000.0, &AnalysisConfig::default()).unwrap();
        let json = serde_json::to_value(&analysis).unwrap();
        assert_eq!(
            json["frames"].as_array().unwrap().len(),
            analysis.frames.len()
        );
        assert!(json["frames"][0]["f0_hz"].is_number());
        assert!(json["onsets_s"].is_array());
        assert!(json["frame_rate"].as_f64().unwrap() > 62.0);
    }

    #[test]
    fn garbage_in_gives_finite_features() {
        for (name, signal) in garbage_inputs(2000) {
            let analysis = analyze(&signal, 16000.0, &AnalysisConfig::default()).unwrap();
            for frame in &analysis.frames {
                for value in [frame.f0_hz, frame.voicing, frame.loudness_db, frame.rms_db] {
                    assert!(value.is_finite(), "{name}: {frame:?}");
                }
            }
            assert!(analysis.onsets_s.iter().all(|t| t.is_finite()));
            // serde_json refuses non-finite floats, so this also checks finiteness.
            serde_json::to_string(&analysis).unwrap();
        }
        assert!(analyze(&[0.0; 10], f32::NAN, &AnalysisConfig::default()).is_err());
        let bad_hop = AnalysisConfig {
            hop_size: 0,
            ..Default::default()
        };
        assert!(analyze(&[0.0; 10], 16000.0, &bad_hop).is_err());
    }
}
