//! Short-time Fourier transform with Hann windows and overlap-add resynthesis.
//!
//! [`StreamingStft`] takes the signal one hop at a time and gives back one hop of resynthesised
//! signal, so the same code serves the real-time worker and offline analysis ([`Stft::frames`]).
//! Everything is allocated in `new`; `process_hop` never allocates.
//!
//! [`StftAnalyzer`] is the analysis half alone (no inverse FFT), used by the feature extractors
//! ([`crate::dsp::loudness`], [`crate::dsp::onset`], [`crate::dsp::metrics`]); both types share
//! the same windowing and FFT code (the private `AnalysisCore`), so a spectrum seen by a feature is
//! bit-identical to the one the resynthesis path modifies. [`Stft::istft`] resynthesises a whole
//! signal offline through [`StreamingStft::process_hop`] itself.
//!
//! Timing: after the hop that ends at input sample `k·hop` is pushed, the analysed frame covers
//! input samples `[k·hop − window, k·hop)`. The output hop returned at that moment holds the
//! samples no later frame will touch, so output lags input by exactly
//! [`StreamingStft::latency_samples`] = `window − hop`.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::dsp::sanitize_into;

/// Frame layout of an STFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftConfig {
    /// Analysis window length in samples (a power of two keeps realfft fast).
    pub window_size: usize,
    /// Distance between frames in samples; must divide `window_size` with at least 4× overlap
    /// so that the squared Hann windows sum to a constant (perfect reconstruction).
    pub hop_size: usize,
}

impl StftConfig {
    /// Number of frequency bins per frame (`window_size / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.window_size / 2 + 1
    }

    /// Checks the overlap-add conditions; returns a human-readable reason when they fail.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_size < 4 || self.hop_size == 0 {
            return Err(format!(
                "STFT window {} / hop {} too small",
                self.window_size, self.hop_size
            ));
        }
        if !self.window_size.is_multiple_of(self.hop_size) || self.window_size / self.hop_size < 4 {
            return Err(format!(
                "STFT hop {} must divide window {} at least 4 times",
                self.hop_size, self.window_size
            ));
        }
        Ok(())
    }
}

/// Periodic Hann window of `len` samples (periodic so that shifted copies sum to a constant).
pub fn hann_window(len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            let phase = std::f64::consts::TAU * n as f64 / len as f64;
            (0.5 - 0.5 * phase.cos()) as f32
        })
        .collect()
}

/// The analysis half shared by [`StreamingStft`] and [`StftAnalyzer`]: input history, window and
/// forward FFT.
struct AnalysisCore {
    config: StftConfig,
    forward: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// The last `window_size` input samples, oldest first.
    input_history: Vec<f32>,
    /// Windowed frame handed to the FFT (realfft uses it as scratch, so it is rebuilt each hop).
    frame: Vec<f32>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl AnalysisCore {
    fn new(config: StftConfig, planner: &mut RealFftPlanner<f32>, extra_scratch: usize) -> Self {
        let forward = planner.plan_fft_forward(config.window_size);
        let scratch_len = forward.get_scratch_len().max(extra_scratch);
        Self {
            input_history: vec![0.0; config.window_size],
            frame: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            scratch: vec![Complex32::default(); scratch_len],
            window: hann_window(config.window_size),
            forward,
            config,
        }
    }

    fn reset(&mut self) {
        self.input_history.fill(0.0);
    }

    /// Shifts one hop into the history and computes the spectrum of the windowed history.
    fn push_hop(&mut self, input: &[f32]) {
        let hop = self.config.hop_size;
        let window_size = self.config.window_size;
        assert_eq!(input.len(), hop, "STFT input must be one hop");
        if hop >= window_size {
            sanitize_into(&input[hop - window_size..], &mut self.input_history);
        } else {
            self.input_history.copy_within(hop.., 0);
            sanitize_into(input, &mut self.input_history[window_size - hop..]);
        }
        for ((frame, sample), weight) in self
            .frame
            .iter_mut()
            .zip(&self.input_history)
            .zip(&self.window)
        {
            *frame = sample * weight;
        }
        // Lengths come from the plan made in `new`, so this call cannot fail.
        let _ = self.forward.process_with_scratch(
            &mut self.frame,
            &mut self.spectrum,
            &mut self.scratch,
        );
    }
}

/// One channel of streaming STFT analysis + overlap-add synthesis.
pub struct StreamingStft {
    core: AnalysisCore,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// Overlap-add gain correction: 1 / (Σ window² over the overlapping frames) / window_size
    /// (realfft's inverse is unnormalised).
    synthesis_gain: f32,
    /// Overlap-add accumulator; its first `hop_size` samples are complete after each hop.
    output_accumulator: Vec<f32>,
}

impl std::fmt::Debug for StreamingStft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingStft")
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

impl StreamingStft {
    /// Plans the FFTs and allocates every buffer.
    ///
    /// # Panics
    /// If `config` fails [`StftConfig::validate`]; check it first for user-supplied values.
    pub fn new(config: StftConfig) -> Self {
        if let Err(reason) = config.validate() {
            panic!("{reason}");
        }
        let mut planner = RealFftPlanner::<f32>::new();
        let inverse = planner.plan_fft_inverse(config.window_size);
        let core = AnalysisCore::new(config, &mut planner, inverse.get_scratch_len());
        let overlap = config.window_size / config.hop_size;
        // For a periodic Hann window at hop = window/overlap, Σ w² = 3·overlap/8 exactly.
        let window_power_sum = 3.0 * overlap as f32 / 8.0;
        Self {
            synthesis_gain: 1.0 / (window_power_sum * config.window_size as f32),
            output_accumulator: vec![0.0; config.window_size],
            inverse,
            core,
        }
    }

    /// The frame layout.
    pub fn config(&self) -> StftConfig {
        self.core.config
    }

    /// Delay between an input sample and the same sample in the resynthesised output.
    pub fn latency_samples(&self) -> usize {
        self.core.config.window_size - self.core.config.hop_size
    }

    /// Clears all history so the next hop starts from silence.
    pub fn reset(&mut self) {
        self.core.reset();
        self.output_accumulator.fill(0.0);
    }

    /// Pushes one hop of input, lets `modify` read or change the frame's spectrum
    /// (`bins()` complex values), and writes one hop of resynthesised output.
    ///
    /// Input samples are sanitised ([`crate::dsp::sanitize_sample`]); non-finite bins left by
    /// `modify` are zeroed, so the output is always finite.
    ///
    /// # Panics
    /// If `input` or `output` is not exactly `hop_size` long.
    pub fn process_hop(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        mut modify: impl FnMut(&mut [Complex32]),
    ) {
        let hop = self.core.config.hop_size;
        let window_size = self.core.config.window_size;
        assert_eq!(output.len(), hop, "STFT output must be one hop");
        self.core.push_hop(input);
        let core = &mut self.core;
        modify(&mut core.spectrum);
        for bin in core.spectrum.iter_mut() {
            if !(bin.re.is_finite() && bin.im.is_finite()) {
                *bin = Complex32::default();
            }
        }
        // realfft requires real DC and Nyquist bins for the inverse; enforce what a modifier may break.
        core.spectrum[0].im = 0.0;
        if let Some(last) = core.spectrum.last_mut() {
            last.im = 0.0;
        }
        let _ = self.inverse.process_with_scratch(
            &mut core.spectrum,
            &mut core.frame,
            &mut core.scratch,
        );

        for ((acc, sample), weight) in self
            .output_accumulator
            .iter_mut()
            .zip(&core.frame)
            .zip(&core.window)
        {
            *acc += sample * weight * self.synthesis_gain;
        }
        output.copy_from_slice(&self.output_accumulator[..hop]);
        self.output_accumulator.copy_within(hop.., 0);
        self.output_accumulator[window_size - hop..].fill(0.0);
    }
}

/// Streaming STFT analysis only: one spectrum per hop, no resynthesis.
///
/// The frame seen after pushing the hop that ends at input sample `end` (exclusive) covers
/// `[end − window, end)` and is centred on `end − window/2`, so
/// [`StftAnalyzer::latency_samples`] = `window_size / 2`. Any `hop_size` in `1..=window_size` is
/// accepted (analysis needs no overlap-add condition). Allocates only in `new`.
pub struct StftAnalyzer {
    core: AnalysisCore,
}

impl std::fmt::Debug for StftAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StftAnalyzer")
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

impl StftAnalyzer {
    /// Plans the FFT and allocates every buffer.
    ///
    /// # Errors
    /// If `window_size < 4` or `hop_size` is 0.
    pub fn new(config: StftConfig) -> Result<Self, crate::dsp::DspError> {
        if config.window_size < 4 {
            return Err(crate::dsp::DspError::invalid(
                "window_size",
                "must be at least 4",
            ));
        }
        if config.hop_size == 0 {
            return Err(crate::dsp::DspError::invalid(
                "hop_size",
                "must be positive",
            ));
        }
        let mut planner = RealFftPlanner::<f32>::new();
        Ok(Self {
            core: AnalysisCore::new(config, &mut planner, 0),
        })
    }

    /// The frame layout.
    pub fn config(&self) -> StftConfig {
        self.core.config
    }

    /// Delay from an input sample to the centre of the frame that reports it: `window_size / 2`.
    pub fn latency_samples(&self) -> usize {
        self.core.config.window_size / 2
    }

    /// The analysis window (periodic Hann), e.g. to calibrate power sums.
    pub fn window(&self) -> &[f32] {
        &self.core.window
    }

    /// The last `window_size` input samples, oldest first (unwindowed).
    pub fn history(&self) -> &[f32] {
        &self.core.input_history
    }

    /// Clears the history so the next hop starts from silence.
    pub fn reset(&mut self) {
        self.core.reset();
    }

    /// Pushes one hop and returns the spectrum (`bins()` values) of the current frame.
    ///
    /// # Panics
    /// If `input` is not exactly `hop_size` long.
    pub fn process_hop(&mut self, input: &[f32]) -> &[Complex32] {
        self.core.push_hop(input);
        &self.core.spectrum
    }
}

/// Offline STFT helpers built on [`StreamingStft`], so offline and streaming analysis agree.
#[derive(Debug, Clone, Copy)]
pub struct Stft;

impl Stft {
    /// Magnitude/phase frames of a whole signal: one frame per hop, the frame at index `k`
    /// covering input samples `[(k+1)·hop − window, (k+1)·hop)` (zero before the start).
    pub fn frames(signal: &[f32], config: StftConfig) -> Vec<Vec<Complex32>> {
        let mut stft = StreamingStft::new(config);
        let hop = config.hop_size;
        let mut hop_in = vec![0.0; hop];
        let mut hop_out = vec![0.0; hop];
        let mut frames = Vec::with_capacity(signal.len().div_ceil(hop));
        for chunk in signal.chunks(hop) {
            hop_in[..chunk.len()].copy_from_slice(chunk);
            hop_in[chunk.len()..].fill(0.0);
            stft.process_hop(&hop_in, &mut hop_out, |spectrum| {
                frames.push(spectrum.to_vec())
            });
        }
        frames
    }

    /// Like [`Stft::frames`] but with `window − hop` zeros appended, so that every input sample
    /// is covered by all the frames it overlaps and [`Stft::istft`] reconstructs the whole signal.
    pub fn frames_padded(signal: &[f32], config: StftConfig) -> Vec<Vec<Complex32>> {
        let mut padded = Vec::with_capacity(signal.len() + config.window_size);
        padded.extend_from_slice(signal);
        padded.resize(signal.len() + config.window_size - config.hop_size, 0.0);
        Self::frames(&padded, config)
    }

    /// Offline inverse STFT through [`StreamingStft::process_hop`] (the streaming code path):
    /// each hop's spectrum is replaced by the next of `frames`, and the output is advanced by the
    /// latency so that `istft(frames_padded(x), len(x)) == x` (to ≤ 1e-5). Returns exactly `len`
    /// samples; frames missing at the end count as silence. Frames shorter or longer than
    /// `bins()` are zero-filled or truncated.
    ///
    /// # Panics
    /// If `config` fails [`StftConfig::validate`].
    pub fn istft(frames: &[Vec<Complex32>], config: StftConfig, len: usize) -> Vec<f32> {
        let mut stft = StreamingStft::new(config);
        let hop = config.hop_size;
        let latency = stft.latency_samples();
        let silence = vec![0.0; hop];
        let mut hop_out = vec![0.0; hop];
        let mut output = Vec::with_capacity(len + latency + hop);
        let hops_needed = (len + latency).div_ceil(hop);
        for k in 0..hops_needed {
            stft.process_hop(&silence, &mut hop_out, |spectrum| {
                spectrum.fill(Complex32::default());
                if let Some(frame) = frames.get(k) {
                    let n = frame.len().min(spectrum.len());
                    spectrum[..n].copy_from_slice(&frame[..n]);
                }
                for bin in spectrum.iter_mut() {
                    if !(bin.re.is_finite() && bin.im.is_finite()) {
                        *bin = Complex32::default();
                    }
                }
            });
            output.extend_from_slice(&hop_out);
        }
        output.drain(..latency.min(output.len()));
        output.resize(len, 0.0);
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resynthesis_reproduces_input_delayed_by_latency() {
        let config = StftConfig {
            window_size: 1024,
            hop_size: 256,
        };
        let mut stft = StreamingStft::new(config);
        let latency = stft.latency_samples();
        let signal: Vec<f32> = (0..20 * 256)
            .map(|n| {
                ((n as f32) * 0.0123).sin() * 0.7 + ((n * 7919 % 113) as f32 / 113.0 - 0.5) * 0.2
            })
            .collect();
        let mut output = vec![0.0; signal.len()];
        for (input, out) in signal.chunks(256).zip(output.chunks_mut(256)) {
            stft.process_hop(input, out, |_| {});
        }
        let max_error = (latency..signal.len())
            .map(|n| (output[n] - signal[n - latency]).abs())
            .fold(0.0f32, f32::max);
        assert!(max_error <= 1e-5, "max reconstruction error {max_error}");
        assert!(
            output[..latency - 256].iter().all(|s| s.abs() < 1e-6),
            "output before the first full frame must be silent"
        );
    }

    #[test]
    fn offline_istft_reconstructs_whole_signal() {
        for (window_size, hop_size) in [(1024, 256), (512, 64), (256, 64)] {
            let config = StftConfig {
                window_size,
                hop_size,
            };
            // Length deliberately not a multiple of the hop.
            let signal: Vec<f32> = (0..5000)
                .map(|n| {
                    ((n as f32) * 0.031).sin() * 0.5 + ((n * 7919 % 101) as f32 / 101.0 - 0.5) * 0.3
                })
                .collect();
            let frames = Stft::frames_padded(&signal, config);
            let rebuilt = Stft::istft(&frames, config, signal.len());
            assert_eq!(rebuilt.len(), signal.len());
            let max_error = signal
                .iter()
                .zip(&rebuilt)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                max_error <= 1e-5,
                "{window_size}/{hop_size}: max error {max_error}"
            );
        }
    }

    #[test]
    fn analyzer_spectrum_matches_streaming_stft() {
        let config = StftConfig {
            window_size: 256,
            hop_size: 64,
        };
        let signal: Vec<f32> = (0..2048).map(|n| ((n as f32) * 0.2).sin()).collect();
        let mut analyzer = StftAnalyzer::new(config).unwrap();
        let from_frames = Stft::frames(&signal, config);
        for (k, hop) in signal.chunks(64).enumerate() {
            let spectrum = analyzer.process_hop(hop);
            assert_eq!(spectrum, &from_frames[k][..]);
        }
        assert_eq!(analyzer.latency_samples(), 128);
        assert!(StftAnalyzer::new(StftConfig {
            window_size: 2,
            hop_size: 1
        })
        .is_err());
        assert!(StftAnalyzer::new(StftConfig {
            window_size: 64,
            hop_size: 0
        })
        .is_err());
        // Hops longer than the window are allowed for analysis.
        let mut long_hop = StftAnalyzer::new(StftConfig {
            window_size: 64,
            hop_size: 100,
        })
        .unwrap();
        assert_eq!(long_hop.process_hop(&[0.5; 100]).len(), 33);
    }

    #[test]
    fn garbage_in_gives_finite_output() {
        let config = StftConfig {
            window_size: 256,
            hop_size: 64,
        };
        for (name, signal) in crate::dsp::test_signals::garbage_inputs(1024) {
            let frames = Stft::frames_padded(&signal, config);
            assert!(
                frames
                    .iter()
                    .flatten()
                    .all(|c| c.re.is_finite() && c.im.is_finite()),
                "{name}"
            );
            let rebuilt = Stft::istft(&frames, config, signal.len());
            assert!(rebuilt.iter().all(|x| x.is_finite()), "{name}");
        }
        // A modifier writing NaN cannot poison the output.
        let mut stft = StreamingStft::new(config);
        let mut out = [0.0f32; 64];
        stft.process_hop(&[0.5; 64], &mut out, |s| s[3].re = f32::NAN);
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn rejects_layouts_without_enough_overlap() {
        assert!(StftConfig {
            window_size: 1024,
            hop_size: 512
        }
        .validate()
        .is_err());
        assert!(StftConfig {
            window_size: 1000,
            hop_size: 300
        }
        .validate()
        .is_err());
        assert!(StftConfig {
            window_size: 1024,
            hop_size: 128
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn frames_match_bin_of_a_pure_tone() {
        let config = StftConfig {
            window_size: 512,
            hop_size: 128,
        };
        let bin = 20;
        let signal: Vec<f32> = (0..4096)
            .map(|n| (std::f32::consts::TAU * bin as f32 * n as f32 / 512.0).sin())
            .collect();
        let frames = Stft::frames(&signal, config);
        let steady = &frames[10];
        let peak = steady
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.norm().total_cmp(&b.1.norm()))
            .map(|(index, _)| index);
        assert_eq!(peak, Some(bin));
    }
}
