//! Short-time Fourier transform with Hann windows and overlap-add resynthesis.
//!
//! [`StreamingStft`] takes the signal one hop at a time and gives back one hop of resynthesised
//! signal, so the same code serves the real-time worker and offline analysis ([`Stft::frames`]).
//! Everything is allocated in `new`; `process_hop` never allocates.
//!
//! Timing: after the hop that ends at input sample `k·hop` is pushed, the analysed frame covers
//! input samples `[k·hop − window, k·hop)`. The output hop returned at that moment holds the
//! samples no later frame will touch, so output lags input by exactly
//! [`StreamingStft::latency_samples`] = `window − hop`.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

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

/// One channel of streaming STFT analysis + overlap-add synthesis.
pub struct StreamingStft {
    config: StftConfig,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    window: Vec<f32>,
    /// Overlap-add gain correction: 1 / (Σ window² over the overlapping frames) / window_size
    /// (realfft's inverse is unnormalised).
    synthesis_gain: f32,
    /// The last `window_size` input samples, oldest first.
    input_history: Vec<f32>,
    /// Overlap-add accumulator; its first `hop_size` samples are complete after each hop.
    output_accumulator: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
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
        let forward = planner.plan_fft_forward(config.window_size);
        let inverse = planner.plan_fft_inverse(config.window_size);
        let window = hann_window(config.window_size);
        let overlap = config.window_size / config.hop_size;
        // For a periodic Hann window at hop = window/overlap, Σ w² = 3·overlap/8 exactly.
        let window_power_sum = 3.0 * overlap as f32 / 8.0;
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        Self {
            synthesis_gain: 1.0 / (window_power_sum * config.window_size as f32),
            input_history: vec![0.0; config.window_size],
            output_accumulator: vec![0.0; config.window_size],
            frame: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            scratch: vec![Complex32::default(); scratch_len],
            forward,
            inverse,
            window,
            config,
        }
    }

    /// The frame layout.
    pub fn config(&self) -> StftConfig {
        self.config
    }

    /// Delay between an input sample and the same sample in the resynthesised output.
    pub fn latency_samples(&self) -> usize {
        self.config.window_size - self.config.hop_size
    }

    /// Clears all history so the next hop starts from silence.
    pub fn reset(&mut self) {
        self.input_history.fill(0.0);
        self.output_accumulator.fill(0.0);
    }

    /// Pushes one hop of input, lets `modify` read or change the frame's spectrum
    /// (`bins()` complex values), and writes one hop of resynthesised output.
    ///
    /// # Panics
    /// If `input` or `output` is not exactly `hop_size` long.
    pub fn process_hop(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        mut modify: impl FnMut(&mut [Complex32]),
    ) {
        let hop = self.config.hop_size;
        assert_eq!(input.len(), hop, "STFT input must be one hop");
        assert_eq!(output.len(), hop, "STFT output must be one hop");

        self.input_history.copy_within(hop.., 0);
        let window_size = self.config.window_size;
        self.input_history[window_size - hop..].copy_from_slice(input);

        for ((frame, sample), weight) in self
            .frame
            .iter_mut()
            .zip(&self.input_history)
            .zip(&self.window)
        {
            *frame = sample * weight;
        }
        // Lengths come from the plans made in `new`, so these calls cannot fail.
        let _ = self.forward.process_with_scratch(
            &mut self.frame,
            &mut self.spectrum,
            &mut self.scratch,
        );
        modify(&mut self.spectrum);
        // realfft requires real DC and Nyquist bins for the inverse; enforce what a modifier may break.
        self.spectrum[0].im = 0.0;
        if let Some(last) = self.spectrum.last_mut() {
            last.im = 0.0;
        }
        let _ = self.inverse.process_with_scratch(
            &mut self.spectrum,
            &mut self.frame,
            &mut self.scratch,
        );

        for ((acc, sample), weight) in self
            .output_accumulator
            .iter_mut()
            .zip(&self.frame)
            .zip(&self.window)
        {
            *acc += sample * weight * self.synthesis_gain;
        }
        output.copy_from_slice(&self.output_accumulator[..hop]);
        self.output_accumulator.copy_within(hop.., 0);
        self.output_accumulator[window_size - hop..].fill(0.0);
    }
}

/// Offline STFT helpers built on [`StreamingStft`], so offline and streaming analysis agree.
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
