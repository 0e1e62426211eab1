//! Frame loudness: A-weighted power in dB (as the DDSP loudness feature, Engel et al. 2020,
//! "DDSP: Differentiable Digital Signal Processing", ICLR) and plain RMS in dB.
//!
//! # Contract
//! - Input: mono audio at `sample_rate_hz`, one hop per [`LoudnessMeter::process_hop`] call,
//!   sanitised on entry.
//! - Output per hop: [`LoudnessFrame`] with
//!   - `loudness_db`: `10·log10(c · Σ_k |X_k|² · W_A(f_k))` over the one-sided Hann spectrum of the
//!     last `window_size` samples, where `W_A` is the IEC 61672-1 A-weighting as a power gain
//!     (0 dB at 1 kHz) and `c = 32 / (3 N²)` calibrates it so that **a 1 kHz sine of peak amplitude
//!     `a` reads `20·log10(a)`** (0 dB = full-scale 1 kHz sine). DDSP averages over bins instead of
//!     summing and offsets by a reference; that differs from this only by a constant.
//!   - `rms_db`: `20·log10(rms)` of the same (unwindowed) samples; a full-scale sine reads −3.01 dB.
//!   - Both are floored at [`DB_FLOOR`](crate::dsp::DB_FLOOR) (−120 dB), so silence is finite.
//! - Latency: the frame describes the centre of its window: `window_size / 2` samples.
//! - Allocation: only in `new`.

use crate::dsp::stft::{StftAnalyzer, StftConfig};
use crate::dsp::{check_sample_rate, dot, power_to_db, run_centered, sanitize_sample, DspError};

/// Settings of a [`LoudnessMeter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessConfig {
    /// Sample rate of the input.
    pub sample_rate_hz: f32,
    /// Samples per hop; one frame per hop.
    pub hop_size: usize,
    /// Analysis window (a power of two keeps the FFT fast); sets resolution and latency.
    pub window_size: usize,
}

impl LoudnessConfig {
    /// Default window: the largest power of two not above 64 ms (2048 at 44.1/48 kHz, 1024 at
    /// 16 kHz), and at least the hop.
    pub fn new(sample_rate_hz: f32, hop_size: usize) -> Self {
        let target = (sample_rate_hz.max(1.0) * 0.064) as usize;
        let mut window_size = 64usize;
        while window_size * 2 <= target {
            window_size *= 2;
        }
        Self {
            sample_rate_hz,
            hop_size,
            window_size: window_size.max(hop_size.next_power_of_two()),
        }
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// Bad sample rate, `hop_size` 0 or above `window_size`, `window_size` < 16 or > 2^20.
    pub fn validate(&self) -> Result<(), DspError> {
        check_sample_rate(self.sample_rate_hz)?;
        if !(16..=1 << 20).contains(&self.window_size) {
            return Err(DspError::invalid("window_size", "must be in 16..=2^20"));
        }
        if self.hop_size == 0 || self.hop_size > self.window_size {
            return Err(DspError::invalid("hop_size", "must be in 1..=window_size"));
        }
        Ok(())
    }
}

/// IEC 61672-1 A-weighting as a *power* gain (so 1.0 at 1 kHz):
/// `R_A(f) = 12194² f⁴ / ((f² + 20.6²) √((f² + 107.7²)(f² + 737.9²)) (f² + 12194²))`,
/// `A(f) = 20·log10(R_A(f)) + 2.00 dB`.
pub fn a_weighting_power(frequency_hz: f32) -> f32 {
    let f2 = f64::from(frequency_hz).powi(2);
    let r_a = 12194f64.powi(2) * f2 * f2
        / ((f2 + 20.6f64.powi(2))
            * ((f2 + 107.7f64.powi(2)) * (f2 + 737.9f64.powi(2))).sqrt()
            * (f2 + 12194f64.powi(2)));
    // +2.00 dB normalises 1 kHz to 0 dB; as a power ratio that is 10^(2/10).
    (r_a * r_a * 10f64.powf(0.2)) as f32
}

/// A-weighting in dB (IEC 61672-1), e.g. ≈ −19.1 dB at 100 Hz; floored at −120 dB at DC.
pub fn a_weighting_db(frequency_hz: f32) -> f32 {
    power_to_db(a_weighting_power(frequency_hz))
}

/// One frame of loudness features.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoudnessFrame {
    /// A-weighted power (dB re a full-scale 1 kHz sine), ≥ −120.
    pub loudness_db: f32,
    /// RMS level (dBFS, full-scale sine = −3.01), ≥ −120.
    pub rms_db: f32,
}

/// Streaming A-weighted loudness + RMS meter; see the [module docs](self).
pub struct LoudnessMeter {
    config: LoudnessConfig,
    analyzer: StftAnalyzer,
    /// A-weighting power gain per bin, premultiplied by the calibration constant `c`.
    bin_weights: Vec<f32>,
    /// One hop of sanitised input.
    hop_buffer: Vec<f32>,
    /// |X_k|² of the current frame (scratch, so the weighted sum vectorises).
    power_spectrum: Vec<f32>,
}

impl std::fmt::Debug for LoudnessMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessMeter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LoudnessMeter {
    /// Validates the config, plans the FFT and precomputes the per-bin weights.
    ///
    /// # Errors
    /// When [`LoudnessConfig::validate`] fails.
    pub fn new(config: LoudnessConfig) -> Result<Self, DspError> {
        config.validate()?;
        let analyzer = StftAnalyzer::new(StftConfig {
            window_size: config.window_size,
            hop_size: config.hop_size,
        })?;
        let n = config.window_size;
        let calibration = 32.0 / (3.0 * (n as f32) * (n as f32));
        let bin_hz = config.sample_rate_hz / n as f32;
        let bin_weights = (0..n / 2 + 1)
            .map(|k| a_weighting_power(k as f32 * bin_hz) * calibration)
            .collect();
        Ok(Self {
            config,
            analyzer,
            power_spectrum: vec![0.0; config.window_size / 2 + 1],
            bin_weights,
            hop_buffer: vec![0.0; config.hop_size],
        })
    }

    /// The settings.
    pub fn config(&self) -> LoudnessConfig {
        self.config
    }

    /// Delay from an input sample to the frame centred on it: `window_size / 2`.
    pub fn latency_samples(&self) -> usize {
        self.config.window_size / 2
    }

    /// Clears the history.
    pub fn reset(&mut self) {
        self.analyzer.reset();
    }

    /// Pushes one hop (sanitised) and measures the latest window.
    ///
    /// # Panics
    /// If `input.len() != hop_size`.
    pub fn process_hop(&mut self, input: &[f32]) -> LoudnessFrame {
        assert_eq!(
            input.len(),
            self.config.hop_size,
            "loudness input must be one hop"
        );
        for (b, &x) in self.hop_buffer.iter_mut().zip(input) {
            *b = sanitize_sample(x);
        }
        let spectrum = self.analyzer.process_hop(&self.hop_buffer);
        for (p, bin) in self.power_spectrum.iter_mut().zip(spectrum) {
            *p = bin.norm_sqr();
        }
        let weighted_power = dot(&self.power_spectrum, &self.bin_weights);
        let history = self.analyzer.history();
        let mean_square = dot(history, history) / history.len() as f32;
        LoudnessFrame {
            loudness_db: power_to_db(weighted_power),
            rms_db: power_to_db(mean_square),
        }
    }

    /// Offline helper through the same code: frames centred on `i · hop_size`,
    /// `len / hop + 1` of them.
    ///
    /// # Errors
    /// When [`LoudnessConfig::validate`] fails.
    pub fn measure(signal: &[f32], config: LoudnessConfig) -> Result<Vec<LoudnessFrame>, DspError> {
        let mut meter = Self::new(config)?;
        let latency = meter.latency_samples();
        Ok(run_centered(signal, config.hop_size, latency, |hop| {
            meter.process_hop(hop)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_signals::{garbage_inputs, sine};

    fn steady_loudness(freq_hz: f64, amplitude: f32, sample_rate_hz: f32) -> LoudnessFrame {
        let config = LoudnessConfig::new(sample_rate_hz, 256);
        let signal = sine(
            freq_hz,
            amplitude,
            f64::from(sample_rate_hz),
            sample_rate_hz as usize / 2,
        );
        let frames = LoudnessMeter::measure(&signal, config).unwrap();
        frames[frames.len() / 2]
    }

    #[test]
    fn a_weighting_matches_iec_table_values() {
        // IEC 61672-1 Table 3 nominal values.
        // (Table values are rounded to 0.1 dB at nominal, not exact, frequencies.)
        for (f, expected) in [
            (1000.0, 0.0),
            (100.0, -19.1),
            (31.5, -39.4),
            (10000.0, -2.5),
        ] {
            let got = a_weighting_db(f);
            assert!(
                (got - expected).abs() < 0.15,
                "{f} Hz: {got} dB, expected {expected}"
            );
        }
        assert_eq!(a_weighting_db(0.0), crate::dsp::DB_FLOOR);
    }

    #[test]
    fn sine_at_minus_20_dbfs_reads_minus_20_db_at_1_khz() {
        for sr in [16000.0, 44100.0, 48000.0] {
            let frame = steady_loudness(1000.0, 0.1, sr);
            assert!((frame.loudness_db + 20.0).abs() < 0.5, "{sr}: {frame:?}");
            assert!((frame.rms_db + 23.01).abs() < 0.1, "{sr}: {frame:?}");
        }
    }

    #[test]
    fn a_100_hz_sine_is_about_19_db_quieter_than_1_khz() {
        let high = steady_loudness(1000.0, 0.5, 48000.0);
        let low = steady_loudness(100.0, 0.5, 48000.0);
        let difference = high.loudness_db - low.loudness_db;
        assert!(
            (difference - 19.1).abs() < 0.5,
            "difference {difference} dB"
        );
        // The window holds 4.27 periods of 100 Hz, so its plain RMS wobbles a little.
        assert!((high.rms_db - low.rms_db).abs() < 0.3);
    }

    #[test]
    fn latency_compensation_centres_frames() {
        // A tone switched on at sample 8192: the frame centred on the switch sees exactly half
        // the (symmetric) window filled, i.e. 3 dB below the steady level.
        let config = LoudnessConfig::new(16000.0, 128);
        let mut signal = vec![0.0f32; 8192];
        signal.extend(sine(1000.0, 0.5, 16000.0, 8192));
        let frames = LoudnessMeter::measure(&signal, config).unwrap();
        let steady = frames[120].loudness_db;
        let at_switch = frames[8192 / 128].loudness_db;
        assert!(
            (steady - at_switch - 3.01).abs() < 0.3,
            "steady {steady}, at switch {at_switch}"
        );
        assert!(frames[(8192 - 1024) / 128].loudness_db == crate::dsp::DB_FLOOR);
    }

    #[test]
    fn block_size_independent_and_reset_reproduces() {
        let signal = sine(440.0, 0.3, 16000.0, 4096);
        let reference = LoudnessMeter::measure(
            &signal,
            LoudnessConfig {
                sample_rate_hz: 16000.0,
                hop_size: 64,
                window_size: 1024,
            },
        )
        .unwrap();
        // The same features at hop 128 are every other hop-64 frame.
        let coarse = LoudnessMeter::measure(
            &signal,
            LoudnessConfig {
                sample_rate_hz: 16000.0,
                hop_size: 128,
                window_size: 1024,
            },
        )
        .unwrap();
        for (i, frame) in coarse.iter().enumerate() {
            let fine = reference[2 * i];
            assert!(
                (frame.loudness_db - fine.loudness_db).abs() < 1e-3,
                "frame {i}"
            );
            assert!((frame.rms_db - fine.rms_db).abs() < 1e-3, "frame {i}");
        }
        let mut meter = LoudnessMeter::new(LoudnessConfig::new(16000.0, 64)).unwrap();
        let first: Vec<_> = signal
            .chunks_exact(64)
            .map(|h| meter.process_hop(h))
            .collect();
        meter.reset();
        let second: Vec<_> = signal
            .chunks_exact(64)
            .map(|h| meter.process_hop(h))
            .collect();
        assert_eq!(first, second);
    }

    #[test]
    fn garbage_in_gives_finite_frames() {
        let config = LoudnessConfig::new(16000.0, 128);
        for (name, signal) in garbage_inputs(3000) {
            let frames = LoudnessMeter::measure(&signal, config).unwrap();
            assert!(!frames.is_empty());
            for f in &frames {
                assert!(
                    f.loudness_db.is_finite() && f.rms_db.is_finite(),
                    "{name}: {f:?}"
                );
                assert!(f.loudness_db >= crate::dsp::DB_FLOOR && f.loudness_db <= 200.0);
            }
            if name == "silence" || name == "nan" || name == "denormal" {
                assert!(
                    frames.iter().all(|f| f.loudness_db == crate::dsp::DB_FLOOR),
                    "{name}"
                );
            }
        }
        assert!(LoudnessMeter::new(LoudnessConfig {
            hop_size: 0,
            ..config
        })
        .is_err());
    }
}
