//! Onset detection by spectral flux with adaptive-threshold peak picking (the "SuperFlux"
//! family without its maximum filter: Böck, Krebs & Schedl 2012, "Evaluating the online
//! capability of onset detection methods", ISMIR; peak-picking rules from Böck & Widmer 2013).
//!
//! # Contract
//! - Input: mono audio, one hop per [`OnsetDetector::process_hop`] call, sanitised on entry.
//! - Onset detection function per hop `k`: half-wave rectified flux of the log-compressed
//!   magnitude spectrum, averaged over bins:
//!   `ODF(k) = mean_b max(0, L_k(b) − L_{k−1}(b))`, `L = ln(1 + γ·|X| / Σw)` (Hann window, so a
//!   sine of amplitude `a` peaks at `a/2` before compression).
//! - Peak picking: hop `k` is an onset when `ODF(k)` is the maximum of
//!   `ODF(k − pre_max ..= k + post_max)`, exceeds `mean(ODF(k − pre_avg ..= k + post_avg)) + delta`,
//!   and is at least `min_gap` hops after the previous onset.
//! - Output time: the flux only says which frame the onset is in (where in the window the
//!   flux peaks depends on the sound), so the position is refined in the time domain: within
//!   the window of frame `k`, split into blocks of `window/32` (≥ 4) samples, the onset is put
//!   at the block boundary where the mean energy of the next 8 blocks most exceeds that of the
//!   previous 8 (the latest boundary within 10 % of the best ratio, so a click is not placed
//!   early), when that ratio is at least 6 dB; otherwise (e.g. a pitch change at constant level) at
//!   `(k + 1) · hop_size − window/4`, the middle of the window's rising half. The tests check
//!   detections fall within one hop of the truth.
//! - Latency: the decision for frame `k` needs `post = max(post_max, post_avg)` more hops, so it
//!   is returned by the call that ends at most `post · hop_size + window_size` samples after the
//!   reported onset position: [`OnsetDetector::latency_samples`].
//! - Allocation: only in `new`.

use crate::dsp::stft::{StftAnalyzer, StftConfig};
use crate::dsp::{check_sample_rate, sanitize_sample, DspError};

/// Settings of an [`OnsetDetector`]; the `_frames` values count hops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnsetConfig {
    /// Sample rate of the input.
    pub sample_rate_hz: f32,
    /// Samples per hop.
    pub hop_size: usize,
    /// FFT window; shorter localises better, longer resolves low notes.
    pub window_size: usize,
    /// Log compression `γ` in `ln(1 + γ|X|)`: larger makes quiet onsets count more.
    pub compression: f32,
    /// Margin over the local mean of the detection function an onset must exceed.
    pub delta: f32,
    /// Hops before the candidate in the moving average.
    pub pre_avg_frames: usize,
    /// Hops after the candidate in the moving average (adds latency).
    pub post_avg_frames: usize,
    /// Hops before the candidate in the local-maximum test.
    pub pre_max_frames: usize,
    /// Hops after the candidate in the local-maximum test (adds latency).
    pub post_max_frames: usize,
    /// Minimum distance between onsets, in hops.
    pub min_gap_frames: usize,
}

impl OnsetConfig {
    /// Defaults: window `2 · hop` rounded up to a power of two (≥ 64); from time constants,
    /// averaging 100 ms
    /// before / 1 hop after, maximum ±30 ms (at least one hop), minimum gap 50 ms,
    /// `γ = 100`, `delta = 0.05`.
    pub fn new(sample_rate_hz: f32, hop_size: usize) -> Self {
        let hops = |seconds: f32| {
            ((seconds * sample_rate_hz.max(1.0) / hop_size.max(1) as f32).round() as usize).max(1)
        };
        Self {
            sample_rate_hz,
            hop_size,
            window_size: (2 * hop_size).next_power_of_two().max(64),
            compression: 100.0,
            delta: 0.05,
            pre_avg_frames: hops(0.1),
            post_avg_frames: 1,
            pre_max_frames: hops(0.03),
            post_max_frames: hops(0.03).min(2),
            min_gap_frames: hops(0.05),
        }
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// Bad sample rate, hop not in `1..=window_size`, window not in `16..=2^20`, non-finite or
    /// negative `compression`/`delta`, or context windows above 1024 hops.
    pub fn validate(&self) -> Result<(), DspError> {
        check_sample_rate(self.sample_rate_hz)?;
        if !(16..=1 << 20).contains(&self.window_size) {
            return Err(DspError::invalid("window_size", "must be in 16..=2^20"));
        }
        if self.hop_size == 0 || self.hop_size > self.window_size {
            return Err(DspError::invalid("hop_size", "must be in 1..=window_size"));
        }
        if !(self.compression.is_finite() && self.compression > 0.0) {
            return Err(DspError::invalid("compression", "must be positive"));
        }
        if !(self.delta.is_finite() && self.delta > 0.0) {
            return Err(DspError::invalid("delta", "must be positive"));
        }
        let longest = [
            self.pre_avg_frames,
            self.post_avg_frames,
            self.pre_max_frames,
            self.post_max_frames,
            self.min_gap_frames,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if longest > 1024 {
            return Err(DspError::invalid("*_frames", "must be at most 1024 hops"));
        }
        Ok(())
    }
}

/// One detected onset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Onset {
    /// Frame index (hops since `new`/`reset`) at which the detection function peaked.
    pub frame: usize,
    /// Onset position in samples from the stream start: `(frame + 1) · hop − window/4`.
    pub sample: usize,
    /// `sample / sample_rate`: time of the onset from the stream start.
    pub time_s: f32,
    /// Detection-function value at the onset (mean log-flux per bin).
    pub strength: f32,
}

/// Streaming spectral-flux onset detector; see the [module docs](self).
pub struct OnsetDetector {
    config: OnsetConfig,
    analyzer: StftAnalyzer,
    /// Log-compressed magnitudes of the previous frame.
    previous_log_magnitude: Vec<f32>,
    /// Ring of the last `pre + post + 1` detection-function values (0 before the start).
    odf_history: Vec<f32>,
    /// Hops pushed since reset.
    frames_seen: usize,
    /// Hop index of the last onset, for the minimum gap.
    last_onset: Option<usize>,
    hop_buffer: Vec<f32>,
    /// Last `lookahead · hop + window` sanitised input samples, oldest first: the window of the
    /// candidate frame is its first `window` samples.
    raw_history: Vec<f32>,
    /// `γ / Σw`: magnitude normalisation and compression in one factor.
    magnitude_scale: f32,
}

impl std::fmt::Debug for OnsetDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnsetDetector")
            .field("config", &self.config)
            .field("frames_seen", &self.frames_seen)
            .finish_non_exhaustive()
    }
}

impl OnsetDetector {
    /// Validates the config, plans the FFT and allocates every buffer.
    ///
    /// # Errors
    /// When [`OnsetConfig::validate`] fails.
    pub fn new(config: OnsetConfig) -> Result<Self, DspError> {
        config.validate()?;
        let analyzer = StftAnalyzer::new(StftConfig {
            window_size: config.window_size,
            hop_size: config.hop_size,
        })?;
        let window_sum: f32 = analyzer.window().iter().sum();
        let context = config.pre_avg_frames.max(config.pre_max_frames)
            + config.post_avg_frames.max(config.post_max_frames)
            + 1;
        Ok(Self {
            previous_log_magnitude: vec![0.0; config.window_size / 2 + 1],
            odf_history: vec![0.0; context],
            frames_seen: 0,
            last_onset: None,
            hop_buffer: vec![0.0; config.hop_size],
            raw_history: vec![
                0.0;
                config.post_avg_frames.max(config.post_max_frames) * config.hop_size
                    + config.window_size
            ],
            magnitude_scale: config.compression / window_sum,
            analyzer,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> OnsetConfig {
        self.config
    }

    fn lookahead_frames(&self) -> usize {
        self.config.post_avg_frames.max(self.config.post_max_frames)
    }

    /// Largest delay from a reported onset position ([`Onset::sample`]) to the end of the call
    /// that reports it: `max(post_avg, post_max) · hop_size + window_size`.
    pub fn latency_samples(&self) -> usize {
        self.lookahead_frames() * self.config.hop_size + self.config.window_size
    }

    /// Onset position inside the candidate frame's window (`raw_history[..window]`), as an
    /// offset from the window start; see the module docs.
    fn refine_position(&self) -> usize {
        let window = self.config.window_size;
        let block = (window / 32).max(4);
        let samples = &self.raw_history[..window];
        let energy = |j: usize| -> f32 {
            samples[j * block..((j + 1) * block).min(window)]
                .iter()
                .map(|x| x * x)
                .sum()
        };
        let blocks = window.div_ceil(block);
        // Averaging over 8 blocks (a quarter window) spans a period of most notes, so the
        // waveform's own ripple does not look like an onset.
        let span = 8usize;
        let peak = (0..blocks).map(energy).fold(0.0f32, f32::max);
        let floor = peak * 1e-6 + 1e-20;
        let ratio = |j: usize| -> f32 {
            let before_range = j.saturating_sub(span)..j;
            let after_range = j..(j + span).min(blocks);
            let mean = |r: std::ops::Range<usize>| {
                let n = r.len().max(1) as f32;
                r.map(energy).sum::<f32>() / n
            };
            (mean(after_range) + floor) / (mean(before_range) + floor)
        };
        let best = (1..blocks).map(ratio).fold(0.0f32, f32::max);
        if best < 4.0 {
            return window - window / 4;
        }
        (1..blocks)
            .rev()
            .find(|&j| ratio(j) >= 0.9 * best)
            .map_or(window - window / 4, |j| j * block)
    }

    /// Clears all history and the hop counter.
    pub fn reset(&mut self) {
        self.analyzer.reset();
        self.raw_history.fill(0.0);
        self.previous_log_magnitude.fill(0.0);
        self.odf_history.fill(0.0);
        self.frames_seen = 0;
        self.last_onset = None;
    }

    /// Pushes one hop (sanitised); returns the onset decided for hop
    /// `frames_seen − 1 − lookahead`, if that hop is one.
    ///
    /// # Panics
    /// If `input.len() != hop_size`.
    pub fn process_hop(&mut self, input: &[f32]) -> Option<Onset> {
        assert_eq!(
            input.len(),
            self.config.hop_size,
            "onset input must be one hop"
        );
        for (b, &x) in self.hop_buffer.iter_mut().zip(input) {
            *b = sanitize_sample(x);
        }
        let hop = self.config.hop_size;
        let history_len = self.raw_history.len();
        if hop >= history_len {
            self.raw_history
                .copy_from_slice(&self.hop_buffer[hop - history_len..]);
        } else {
            self.raw_history.copy_within(hop.., 0);
            self.raw_history[history_len - hop..].copy_from_slice(&self.hop_buffer);
        }
        let spectrum = self.analyzer.process_hop(&self.hop_buffer);
        let mut flux = 0.0f32;
        for (bin, previous) in spectrum.iter().zip(self.previous_log_magnitude.iter_mut()) {
            let log_magnitude = (self.magnitude_scale * bin.norm()).ln_1p();
            flux += (log_magnitude - *previous).max(0.0);
            *previous = log_magnitude;
        }
        let odf = flux / spectrum.len() as f32;
        let odf = if odf.is_finite() { odf } else { 0.0 };

        let len = self.odf_history.len();
        self.odf_history[self.frames_seen % len] = odf;
        self.frames_seen += 1;
        self.pick_peak()
    }

    /// Peak picking for the candidate `lookahead` hops back from the newest.
    fn pick_peak(&mut self) -> Option<Onset> {
        let c = &self.config;
        let lookahead = self.lookahead_frames();
        let newest = self.frames_seen - 1;
        let candidate = newest.checked_sub(lookahead)?;
        let len = self.odf_history.len();
        // Values older than the stream start read as 0 (the ring starts zeroed).
        let at = |frame: isize| -> f32 {
            if frame < 0 || frame as usize > newest {
                0.0
            } else {
                self.odf_history[frame as usize % len]
            }
        };
        let cand = candidate as isize;
        let value = at(cand);
        let is_max = (cand - c.pre_max_frames as isize..=cand + c.post_max_frames as isize)
            .all(|f| at(f) <= value);
        let avg_range = cand - c.pre_avg_frames as isize..=cand + c.post_avg_frames as isize;
        let count = (c.pre_avg_frames + c.post_avg_frames + 1) as f32;
        let mean = avg_range.map(at).sum::<f32>() / count;
        let far_enough = self
            .last_onset
            .is_none_or(|last| candidate - last >= c.min_gap_frames);
        if is_max && value >= mean + c.delta && far_enough {
            self.last_onset = Some(candidate);
            // The candidate's window is [(candidate + 1)·hop − window, (candidate + 1)·hop).
            let window_start = ((candidate + 1) * c.hop_size) as isize - c.window_size as isize;
            let sample = (window_start + self.refine_position() as isize).max(0) as usize;
            Some(Onset {
                frame: candidate,
                sample,
                time_s: sample as f32 / c.sample_rate_hz,
                strength: value,
            })
        } else {
            None
        }
    }

    /// Offline helper through the same code: all onsets of `signal` (the final partial hop is
    /// zero-padded, and the lookahead is flushed with silence).
    ///
    /// # Errors
    /// When [`OnsetConfig::validate`] fails.
    pub fn detect(signal: &[f32], config: OnsetConfig) -> Result<Vec<Onset>, DspError> {
        let mut detector = Self::new(config)?;
        let hop = config.hop_size;
        let mut onsets = Vec::new();
        let mut buffer = vec![0.0f32; hop];
        let hops = signal.len().div_ceil(hop) + detector.lookahead_frames();
        for k in 0..hops {
            buffer.fill(0.0);
            if let Some(chunk) = signal.chunks(hop).nth(k) {
                buffer[..chunk.len()].copy_from_slice(chunk);
            }
            if let Some(onset) = detector.process_hop(&buffer) {
                if onset.sample < signal.len() {
                    onsets.push(onset);
                }
            }
        }
        Ok(onsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_signals::{garbage_inputs, TestRng};

    const SR: f32 = 16000.0;

    fn assert_matches(detected: &[Onset], truth_samples: &[usize], hop: usize, label: &str) {
        assert_eq!(
            detected.len(),
            truth_samples.len(),
            "{label}: detected {:?}",
            detected.iter().map(|o| o.sample).collect::<Vec<_>>()
        );
        for (onset, &truth) in detected.iter().zip(truth_samples) {
            let at = onset.sample;
            assert!(
                at.abs_diff(truth) <= hop,
                "{label}: onset at {at}, truth {truth} (hop {hop})"
            );
            let expected_time = at as f32 / SR;
            assert!((onset.time_s - expected_time).abs() < 1e-6);
        }
    }

    #[test]
    fn click_train_is_detected_within_one_hop() {
        for hop in [64, 128, 160] {
            let truth: Vec<usize> = vec![1000, 5123, 9001, 13077, 17500];
            let mut signal = vec![0.0f32; 20000];
            let mut rng = TestRng::new(3);
            for x in signal.iter_mut() {
                *x = 1e-4 * rng.uniform();
            }
            for &t in &truth {
                signal[t] = 0.8;
                signal[t + 1] = -0.5;
            }
            let onsets = OnsetDetector::detect(&signal, OnsetConfig::new(SR, hop)).unwrap();
            assert_matches(&onsets, &truth, hop, &format!("clicks hop {hop}"));
        }
    }

    #[test]
    fn plucked_tones_are_detected_within_one_hop() {
        let hop = 128;
        let notes = [
            (800usize, 196.0f32),
            (6000, 330.0),
            (11200, 262.0),
            (15900, 440.0),
        ];
        let mut signal = vec![0.0f32; 22000];
        for &(start, f0) in &notes {
            for (n, x) in signal[start..].iter_mut().enumerate() {
                let t = n as f32 / SR;
                let envelope = (-t * 6.0).exp() * (n as f32 / 16.0).min(1.0);
                let tone: f32 = (1..=6)
                    .map(|k| (std::f32::consts::TAU * f0 * k as f32 * t).sin() / k as f32)
                    .sum();
                *x += 0.3 * envelope * tone;
            }
        }
        let onsets = OnsetDetector::detect(&signal, OnsetConfig::new(SR, hop)).unwrap();
        let truth: Vec<usize> = notes.iter().map(|n| n.0).collect();
        assert_matches(&onsets, &truth, hop, "plucks");
    }

    #[test]
    fn latency_and_streaming_decisions_are_consistent() {
        let hop = 128;
        let config = OnsetConfig::new(SR, hop);
        let mut detector = OnsetDetector::new(config).unwrap();
        let mut signal = vec![0.0f32; 8000];
        signal[3000] = 1.0;
        let mut reported_at = None;
        for (k, chunk) in signal.chunks_exact(hop).enumerate() {
            if let Some(onset) = detector.process_hop(chunk) {
                reported_at = Some(((k + 1) * hop, onset));
            }
        }
        let (end_of_call, onset) = reported_at.expect("click detected");
        assert!(onset.sample.abs_diff(3000) <= 8, "{onset:?}");
        assert!(end_of_call - onset.sample <= detector.latency_samples());
        assert!(end_of_call - onset.sample + config.window_size >= detector.latency_samples());
        // reset reproduces
        detector.reset();
        let again: Vec<_> = signal
            .chunks_exact(hop)
            .filter_map(|c| detector.process_hop(c))
            .collect();
        assert_eq!(again, vec![onset]);
    }

    #[test]
    fn garbage_in_gives_no_panic_and_finite_onsets() {
        let config = OnsetConfig::new(SR, 128);
        for (name, signal) in garbage_inputs(4000) {
            let onsets = OnsetDetector::detect(&signal, config).unwrap();
            for o in &onsets {
                assert!(o.time_s.is_finite() && o.strength.is_finite(), "{name}");
            }
            if matches!(name, "silence" | "nan" | "inf" | "denormal" | "empty") {
                assert!(onsets.is_empty(), "{name}: {onsets:?}");
            }
        }
        assert!(OnsetDetector::new(OnsetConfig {
            delta: 0.0,
            ..config
        })
        .is_err());
    }
}
