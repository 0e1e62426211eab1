//! Differentiable harmonic-plus-noise synthesiser in burn, a tensor re-statement of
//! [`crate::dsp::synth::HarmonicNoiseSynth`]'s documented behaviour (the plugin renders the
//! exported model's controls with that synth, so training must hear what the plugin plays):
//!
//! - **Harmonics**: `y[n] = Σ_k a_k[n] · sin(k·φ[n])`. Within the hop a frame is rendered into,
//!   f0 and every harmonic amplitude move linearly from the previous frame's value to this
//!   frame's, reaching it at the hop's last sample (`t = (n+1)/hop`); the first frame starts at
//!   its own f0 and from silence. Harmonic `k` is silenced for the whole hop when
//!   `k·max(f0_prev, f0) ≥ Nyquist`, and the surviving weights are renormalised. The phase `φ`
//!   depends on f0 only, which comes from the analysis (not from the model), so it is computed
//!   once on the CPU in f64 ([`HarmonicPlan`]) and enters the graph as a constant.
//! - **Noise**: per frame, `2·hop` samples of uniform noise in `[-1, 1)` are filtered in the
//!   frequency domain by the band magnitudes interpolated linearly between band centres
//!   ([`band_interpolation`]), windowed by the sine window and overlap-added at 50 %; the
//!   segment of frame `f` covers samples `f·hop .. f·hop + 2·hop`.
//!
//! Gradients flow into amplitude, harmonic distribution and noise magnitudes. With the same
//! noise samples ([`dsp_noise`]) the output equals `HarmonicNoiseSynth::render` to ~5e-7 (the
//! test states the tolerance).

use crate::dsp::synth::{SynthConfig, NOISE_SEED};
use burn::signal::{irfft, rfft};
use burn::tensor::{Device, Tensor, TensorData};

fn clean_control(x: f32) -> f32 {
    if x.is_finite() && x > 0.0 {
        x.min(crate::dsp::MAX_INPUT)
    } else {
        0.0
    }
}

/// The `[M, hop + 1]` matrix mapping band magnitudes to FFT-bin gains of the `2·hop`-sample
/// noise segment: linear interpolation between band centres (linear or mel spaced over
/// `0..=max_hz`), 0 above `max_hz`; as in `dsp::synth`.
pub fn band_interpolation(config: &SynthConfig) -> Vec<f32> {
    let m = config.n_noise_bands;
    let segment = 2 * config.hop_size;
    let bins = segment / 2 + 1;
    let mut matrix = vec![0.0f32; m * bins];
    if m == 0 {
        return matrix;
    }
    let centres = crate::dsp::synth::noise_band_centres_hz(config);
    let bin_hz = config.sample_rate_hz / segment as f32;
    for b in 0..bins {
        let f = b as f32 * bin_hz;
        let Some((j, frac)) = crate::dsp::synth::band_position(&centres, config.max_hz, f) else {
            continue;
        };
        matrix[j * bins + b] += 1.0 - frac;
        if frac > 0.0 {
            matrix[(j + 1) * bins + b] += frac;
        }
    }
    matrix
}

/// The noise `HarmonicNoiseSynth` draws after `reset()` for `frames` frames: `2·hop` uniform
/// samples per frame from xorshift64* seeded with [`NOISE_SEED`] (the documented PRNG). Used to
/// compare the two synthesisers sample by sample.
pub fn dsp_noise(frames: usize, hop: usize) -> Vec<f32> {
    let mut state = NOISE_SEED;
    (0..frames * 2 * hop)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 * (2.0 / (1u64 << 24) as f32) - 1.0
        })
        .collect()
}

/// Real and imaginary parts of the spectra of consecutive `len`-sample segments of `signal`
/// (imaginary parts of DC and Nyquist dropped, as in `dsp::synth`).
fn cpu_spectra(signal: &[f32], len: usize) -> (Vec<f32>, Vec<f32>) {
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(len);
    let (mut input, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let bins = spectrum.len();
    let (mut re, mut im) = (Vec::with_capacity(signal.len() / 2 + bins), Vec::new());
    im.reserve(signal.len() / 2 + bins);
    for segment in signal.chunks_exact(len) {
        input.copy_from_slice(segment);
        let _ = fft.process(&mut input, &mut spectrum);
        for (k, c) in spectrum.iter().enumerate() {
            re.push(c.re);
            im.push(if k == 0 || k + 1 == bins { 0.0 } else { c.im });
        }
    }
    (re, im)
}

/// The f0-only part of the harmonic synthesis, computed on the CPU in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmonicPlan {
    /// `[B, T·hop]` fundamental phase per sample, radians in `[0, 2π)`.
    pub phase: Vec<f32>,
    /// `[B, T, N]` 1 where a harmonic is below Nyquist for the whole hop, else 0.
    pub mask: Vec<f32>,
}

impl HarmonicPlan {
    /// Plans `batch` rows of `frames` frames from their f0 (`[B, T]`, Hz), each row starting
    /// from time zero (phase 0, first frame at its own f0).
    ///
    /// # Panics
    /// If `f0_hz.len() != batch · frames`.
    pub fn new(f0_hz: &[f32], batch: usize, frames: usize, config: &SynthConfig) -> Self {
        assert_eq!(f0_hz.len(), batch * frames, "f0 must be [B, T]");
        let hop = config.hop_size;
        let n = config.n_harmonics;
        let sr = f64::from(config.sample_rate_hz);
        let nyquist = config.sample_rate_hz / 2.0;
        let ceiling = config.harmonic_ceiling_hz();
        let tau = std::f64::consts::TAU;
        let mut phase = Vec::with_capacity(batch * frames * hop);
        let mut mask = Vec::with_capacity(batch * frames * n);
        for row in f0_hz.chunks_exact(frames.max(1)) {
            let mut cycles = 0.0f64;
            let mut previous: Option<f32> = None;
            for &f0 in row {
                let f_end = clean_control(f0).min(nyquist);
                let f_start = previous.unwrap_or(f_end);
                let f_max = f_start.max(f_end);
                let valid = if f_max > 0.0 {
                    ((ceiling / f_max).ceil() as usize).saturating_sub(1).min(n)
                } else {
                    0
                };
                mask.extend((0..n).map(|k| if k < valid { 1.0 } else { 0.0 }));
                let (fs, fe) = (f64::from(f_start), f64::from(f_end));
                let step = (fe - fs) / hop as f64;
                let mut phi = tau * cycles;
                for i in 0..hop {
                    phase.push(phi.rem_euclid(tau) as f32);
                    phi += tau * (fs + (i + 1) as f64 * step) / sr;
                }
                let advance = (hop as f64 * fs + (fe - fs) * (hop as f64 + 1.0) / 2.0) / sr;
                cycles = (cycles + advance).rem_euclid(1.0);
                previous = Some(f_end);
            }
        }
        Self { phase, mask }
    }
}

/// The differentiable synthesiser for one [`SynthConfig`]; holds its constant tensors.
#[derive(Debug, Clone)]
pub struct DiffSynth {
    config: SynthConfig,
    /// `[M, hop + 1]` band → bin gains.
    interpolation: Tensor<2>,
    /// `[2·hop]` sine window × the sample-rate scaling.
    window: Tensor<1>,
    /// `[hop + 1]` 0 at DC and Nyquist (their imaginary parts are dropped, as in `dsp::synth`).
    imag_mask: Tensor<1>,
    /// `[1, 1, N]` harmonic numbers 1..=N.
    harmonic_numbers: Tensor<3>,
    /// `[1, 1, hop, 1]` interpolation position `(n + 1) / hop`.
    ramp: Tensor<4>,
    /// For a segment length that is not a power of two (48 kHz: 384), which burn's FFT does not
    /// take: the inverse real DFT as two `[hop + 1, 2·hop]` matrices (cosine, sine parts). The
    /// forward transform of the constant noise is done on the CPU.
    inverse_dft: Option<(Tensor<2>, Tensor<2>)>,
}

/// The normalised inverse real DFT of length `len` as `(cos, sin)` matrices `[len/2 + 1, len]`:
/// `x = re · cos + im · sin`.
fn inverse_dft_basis(len: usize) -> (Vec<f32>, Vec<f32>) {
    let bins = len / 2 + 1;
    let (mut cos, mut sin) = (vec![0.0f32; bins * len], vec![0.0f32; bins * len]);
    for k in 0..bins {
        let weight = if k == 0 || 2 * k == len { 1.0 } else { 2.0 } / len as f64;
        for n in 0..len {
            let angle = std::f64::consts::TAU * (k * n % len) as f64 / len as f64;
            cos[k * len + n] = (weight * angle.cos()) as f32;
            sin[k * len + n] = (-weight * angle.sin()) as f32;
        }
    }
    (cos, sin)
}

impl DiffSynth {
    /// Builds the constants on `device`.
    ///
    /// # Panics
    /// If `config` fails [`SynthConfig::validate`] or has no harmonic.
    pub fn new(config: SynthConfig, device: &Device) -> Self {
        config.validate().expect("valid synth config");
        assert!(config.n_harmonics > 0, "at least one harmonic");
        let hop = config.hop_size;
        let bins = hop + 1;
        let m = config.n_noise_bands;
        let rate_scale = (config.sample_rate_hz / 2.0 / config.max_hz).sqrt();
        let window: Vec<f32> = (0..2 * hop)
            .map(|i| {
                (std::f32::consts::PI * (i as f32 + 0.5) / (2 * hop) as f32).sin() * rate_scale
            })
            .collect();
        let mut imag_mask = vec![1.0f32; bins];
        imag_mask[0] = 0.0;
        imag_mask[bins - 1] = 0.0;
        let n = config.n_harmonics;
        Self {
            interpolation: Tensor::from_data(
                if m == 0 {
                    TensorData::new(vec![0.0f32; bins], [1, bins])
                } else {
                    TensorData::new(band_interpolation(&config), [m, bins])
                },
                device,
            ),
            window: Tensor::from_data(TensorData::new(window, [2 * hop]), device),
            imag_mask: Tensor::from_data(TensorData::new(imag_mask, [bins]), device),
            harmonic_numbers: Tensor::from_data(
                TensorData::new((1..=n).map(|k| k as f32).collect::<Vec<_>>(), [1, 1, n]),
                device,
            ),
            ramp: Tensor::from_data(
                TensorData::new(
                    (0..hop)
                        .map(|i| (i + 1) as f32 / hop as f32)
                        .collect::<Vec<_>>(),
                    [1, 1, hop, 1],
                ),
                device,
            ),
            inverse_dft: (!(2 * hop).is_power_of_two()).then(|| {
                let (cos, sin) = inverse_dft_basis(2 * hop);
                (
                    Tensor::from_data(TensorData::new(cos, [bins, 2 * hop]), device),
                    Tensor::from_data(TensorData::new(sin, [bins, 2 * hop]), device),
                )
            }),
            config,
        }
    }

    /// The synth settings.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// Renders audio.
    ///
    /// # Shapes
    /// - `amplitude` `[B, T, 1]`, `harmonics` `[B, T, N]`, `noise` `[B, T, M]` (model outputs)
    /// - `plan`: from the `[B, T]` f0 ([`HarmonicPlan::new`])
    /// - `noise_source`: `[B·T·2·hop]` uniform samples in `[-1, 1)`
    /// - returns `[B, T·hop]`
    pub fn render(
        &self,
        amplitude: Tensor<3>,
        harmonics: Tensor<3>,
        noise: Tensor<3>,
        plan: &HarmonicPlan,
        noise_source: &[f32],
    ) -> Tensor<2> {
        let [batch, frames, n] = harmonics.dims();
        let device = harmonics.device();
        let hop = self.config.hop_size;
        let samples = frames * hop;
        assert_eq!(n, self.config.n_harmonics, "harmonics width");
        assert_eq!(
            plan.phase.len(),
            batch * samples,
            "plan does not match the batch"
        );

        // Harmonic part.
        let phase: Tensor<3> = Tensor::from_data(
            TensorData::new(plan.phase.clone(), [batch, samples, 1]),
            &device,
        );
        let sines = (phase * self.harmonic_numbers.clone()).sin(); // [B, S, N]
        let mask: Tensor<3> = Tensor::from_data(
            TensorData::new(plan.mask.clone(), [batch, frames, n]),
            &device,
        );
        let masked = harmonics * mask.clone();
        let total = masked.clone().sum_dim(2).clamp_min(1e-30); // [B, T, 1]
        let target = amplitude * masked / total; // [B, T, N]
        let previous = if frames > 1 {
            Tensor::cat(
                vec![
                    Tensor::zeros([batch, 1, n], &device),
                    target.clone().narrow(1, 0, frames - 1),
                ],
                1,
            )
        } else {
            Tensor::zeros([batch, 1, n], &device)
        };
        let step = (target - previous.clone()).unsqueeze_dim::<4>(2); // [B, T, 1, N]
        let amplitudes = (previous.unsqueeze_dim::<4>(2) + step * self.ramp.clone())
            * mask.unsqueeze_dim::<4>(2); // [B, T, hop, N]
        let harmonic = (amplitudes.reshape([batch, samples, n]) * sines)
            .sum_dim(2)
            .reshape([batch, samples]);

        // Noise part.
        let m = self.config.n_noise_bands;
        if m == 0 {
            return harmonic;
        }
        assert_eq!(
            noise_source.len(),
            batch * frames * 2 * hop,
            "noise source length"
        );
        let gains = noise
            .reshape([batch * frames, m])
            .matmul(self.interpolation.clone()); // [B·T, hop + 1]
        let filtered = match &self.inverse_dft {
            None => {
                let source: Tensor<2> = Tensor::from_data(
                    TensorData::new(noise_source.to_vec(), [batch * frames, 2 * hop]),
                    &device,
                );
                let (re, im) = rfft(source, 1, None); // [B·T, hop + 1]
                let im = im * self.imag_mask.clone().unsqueeze::<2>();
                irfft(re * gains.clone(), im * gains, 1, Some(2 * hop))
            }
            Some((cos, sin)) => {
                let (re, im) = cpu_spectra(noise_source, 2 * hop);
                let bins = hop + 1;
                let re: Tensor<2> =
                    Tensor::from_data(TensorData::new(re, [batch * frames, bins]), &device);
                let im: Tensor<2> =
                    Tensor::from_data(TensorData::new(im, [batch * frames, bins]), &device);
                (re * gains.clone()).matmul(cos.clone()) + (im * gains).matmul(sin.clone())
            }
        };
        let segments = filtered * self.window.clone().unsqueeze::<2>(); // [B·T, 2·hop]
        let segments = segments.reshape([batch, frames, 2, hop]);
        let head = segments.clone().narrow(2, 0, 1);
        let tail = segments.narrow(2, 1, 1);
        let tail = if frames > 1 {
            Tensor::cat(
                vec![
                    Tensor::zeros([batch, 1, 1, hop], &device),
                    tail.narrow(1, 0, frames - 1),
                ],
                1,
            )
        } else {
            Tensor::zeros([batch, 1, 1, hop], &device)
        };
        harmonic + (head + tail).reshape([batch, samples])
    }
}
