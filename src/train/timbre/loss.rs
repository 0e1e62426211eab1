//! Multi-scale spectral loss: the differentiable twin of
//! [`crate::dsp::metrics::multiscale_spectral_distance`] (DDSP, Engel et al. 2020, §4.2.1),
//! so training minimises exactly the figure the evaluation reports.
//!
//! For each FFT size `W` in [`SPECTRAL_SCALES`] (2048 … 64), hop `W/4`, periodic Hann window
//! (taken from `dsp::stft::StftAnalyzer`, the metric's own), frames positioned as the metric's
//! streaming STFT does (`W − W/4` zeros before the signal, frames until the last sample has left
//! the window): `mean |S − Ŝ| + mean |ln(S + ε) − ln(Ŝ + ε)|` over frames × bins, with
//! magnitudes divided by the window sum and `ε` = [`LOG_EPSILON`]. The loss is the mean over
//! scales (per batch row, then over the batch).

use crate::dsp::metrics::{LOG_EPSILON, SPECTRAL_SCALES};
use crate::dsp::stft::{StftAnalyzer, StftConfig};
use burn::signal::rfft;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};

/// Windows of every scale, built once.
#[derive(Debug, Clone)]
pub struct SpectralLoss {
    /// `(W, window [W] already divided by its sum)` per scale.
    scales: Vec<(usize, Tensor<1>)>,
}

impl SpectralLoss {
    /// The DDSP scales (2048 … 64).
    pub fn new(device: &Device) -> Self {
        Self::with_scales(&SPECTRAL_SCALES, device)
    }

    /// Custom scales (powers of two ≥ 8).
    ///
    /// # Panics
    /// If a scale is not a power of two ≥ 8.
    pub fn with_scales(sizes: &[usize], device: &Device) -> Self {
        let scales = sizes
            .iter()
            .map(|&w| {
                assert!(w.is_power_of_two() && w >= 8, "scale {w}");
                let analyzer = StftAnalyzer::new(StftConfig {
                    window_size: w,
                    hop_size: w / 4,
                })
                .expect("valid STFT config");
                let window = analyzer.window();
                let sum: f32 = window.iter().sum();
                let scaled: Vec<f32> = window.iter().map(|v| v / sum).collect();
                (w, Tensor::from_data(TensorData::new(scaled, [w]), device))
            })
            .collect();
        Self { scales }
    }

    /// Normalised magnitude frames `[B, frames, W/2 + 1]` of `signal` `[B, L]` at one scale.
    fn magnitudes(signal: Tensor<2>, size: usize, window: &Tensor<1>) -> Tensor<3> {
        let [_, len] = signal.dims();
        let hop = size / 4;
        let frames = (len + size - hop).div_ceil(hop).max(1);
        let back = frames * hop - len;
        let padded = signal.pad([(0, 0), (size - hop, back)], PadMode::Constant(0.0));
        let framed: Tensor<3> = padded.unfold(1, size, hop); // [B, frames, W]
        let [batch, count, _] = framed.dims();
        let windowed = framed * window.clone().reshape([1, 1, size]);
        let (re, im) = rfft(windowed.reshape([batch * count, size]), 1, None);
        let power = re.clone() * re + im.clone() * im;
        power
            .clamp_min(1e-24)
            .sqrt()
            .reshape([batch, count, size / 2 + 1])
    }

    /// The loss (a scalar, shape `[1]`) between `estimate` and `reference`, both `[B, L]`.
    pub fn forward(&self, estimate: Tensor<2>, reference: Tensor<2>) -> Tensor<1> {
        let mut total: Option<Tensor<1>> = None;
        for (size, window) in &self.scales {
            let a = Self::magnitudes(estimate.clone(), *size, window);
            let b = Self::magnitudes(reference.clone(), *size, window);
            let linear = (a.clone() - b.clone()).abs().mean();
            let log = ((a + LOG_EPSILON).log() - (b + LOG_EPSILON).log())
                .abs()
                .mean();
            let term = linear + log;
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        total.expect("at least one scale") / self.scales.len() as f32
    }
}
