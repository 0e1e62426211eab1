//! DDSP harmonic-plus-noise synthesiser (Engel, Hantrakul, Gu & Roberts 2020, "DDSP:
//! Differentiable Digital Signal Processing", ICLR, §3.2–3.3 and appendix).
//!
//! # Contract
//! - Controls per frame ([`FrameControls`]): `f0_hz`; `amplitude` (linear, the summed amplitude of
//!   all harmonics); `harmonic_distribution` (N non-negative weights, normalised here);
//!   `noise_magnitudes` (M non-negative linear gains of the filtered-noise bands). Non-finite or
//!   negative controls are treated as 0; shorter slices are zero-extended, longer ones truncated.
//! - Output: one hop per [`HarmonicNoiseSynth::process_frame`] call, `hop_size` samples or
//!   fewer (a host rate that is not a whole number of hops per frame alternates lengths).
//! - Timing (latency): within the hop a frame is rendered into, f0 and every harmonic amplitude
//!   move linearly, per sample, from the previous frame's value to this frame's, reaching it at
//!   the hop's last sample; each frame's noise segment is centred on the end of its hop. So the
//!   output follows the control timeline by one hop: [`HarmonicNoiseSynth::latency_samples`] =
//!   `hop_size`. After `new`/`reset` the first frame fades in from silence at its own f0.
//! - Allocation: only in `new`; `process_frame` does not allocate. [`HarmonicNoiseSynth::render`]
//!   allocates its output.
//! - Determinism: noise comes from a fixed-seed PRNG, restored by `reset()`; `render` resets first,
//!   so equal controls give bit-equal audio.
//!
//! # Harmonic part
//! `y[n] = Σ_k a_k[n] · sin(k · φ[n])`, with one running fundamental phase `φ` (f64, wrapped) and
//! harmonic `k` at phase `k · φ` — the DDSP cumulative-sum oscillator, phase-continuous across
//! frames because `φ` is. Anti-aliasing: harmonic `k` is silenced for the whole hop when
//! `k · max(f0_prev, f0_this) ≥ min(Nyquist, max_hz)`, and the remaining distribution is
//! renormalised to sum to 1 (DDSP's `remove_above_nyquist` + normalisation; `max_hz` keeps a
//! model rendered above its training rate inside the band it learned). The fundamental phasor `e^{iφ[n]}` is
//! advanced per sample by a second-order recursion (exact for a linear f0 ramp) re-anchored to
//! the exact f64 phase at every hop, so rounding never accumulates; harmonic `k`'s phasor is its
//! `k`-th power, built by repeated multiplication (error grows only linearly in `k`).
//!
//! # Noise part (frequency sampling + overlap-add)
//! Per frame, `L = 2·hop` samples of uniform white noise in `[-1, 1)` are filtered in the
//! frequency domain by the magnitude response interpolated linearly between band centres
//! (linear or mel spaced over `0..=max_hz`, 0 above), windowed by a sine window and
//! overlap-added at 50 % (a shorter hop rises and falls over its own length). The sine window is power-complementary (`w[n]² + w[n+hop]² = 1`), so
//! constant magnitudes give stationary noise whose variance is `m² / 3` — DDSP's level for
//! uniform noise — when `max_hz` is the Nyquist frequency. The noise is scaled by
//! `√(Nyquist / max_hz)` so its spectral density in Hz, and hence the sound, does not depend
//! on the sample rate.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::dsp::{check_sample_rate, DspError, MAX_INPUT};

/// The seed restored by `reset()`; any fixed non-zero value gives reproducible renders.
pub const NOISE_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Output samples computed together in the harmonic loop (one SIMD-friendly chunk).
const LANES: usize = 8;

/// How noise band centres are spread over `0..=max_hz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseBandSpacing {
    /// Equally spaced in Hz (DDSP's `FilteredNoise`).
    #[default]
    Linear,
    /// Equally spaced on the mel scale `2595·log10(1 + f/700)`.
    Mel,
}

/// Most harmonics a [`HarmonicNoiseSynth`] renders (a model's `synth.harmonics` is checked
/// against it before any buffer is sized by it).
pub const MAX_HARMONICS: usize = 1024;
/// Most noise bands a [`HarmonicNoiseSynth`] filters.
pub const MAX_NOISE_BANDS: usize = 4096;
/// Highest band top ([`SynthConfig::max_hz`]) a synthesiser accepts.
pub const MAX_BAND_HZ: f32 = 96_000.0;

/// Settings of a [`HarmonicNoiseSynth`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Output sample rate.
    pub sample_rate_hz: f32,
    /// Samples per control frame.
    pub hop_size: usize,
    /// Number of harmonics `N` (length of the harmonic distribution).
    pub n_harmonics: usize,
    /// Number of noise bands `M`; 0 disables the noise.
    pub n_noise_bands: usize,
    /// Band centre spacing.
    pub noise_band_spacing: NoiseBandSpacing,
    /// Top of the synthesised band: the last noise band's centre, and the frequency at which
    /// harmonics stop (or the Nyquist frequency, if lower). Set it to the band the model was
    /// trained to fill: a model trained at 16 kHz rendered at 48 kHz stays within its 8 kHz,
    /// where its harmonic weights mean something. Above the Nyquist frequency the bands are
    /// simply not rendered.
    pub max_hz: f32,
}

impl SynthConfig {
    /// Linear bands up to the Nyquist frequency.
    pub fn new(
        sample_rate_hz: f32,
        hop_size: usize,
        n_harmonics: usize,
        n_noise_bands: usize,
    ) -> Self {
        Self {
            sample_rate_hz,
            hop_size,
            n_harmonics,
            n_noise_bands,
            noise_band_spacing: NoiseBandSpacing::Linear,
            max_hz: sample_rate_hz / 2.0,
        }
    }

    /// Where harmonics stop: `max_hz` or the Nyquist frequency, whichever is lower.
    pub fn harmonic_ceiling_hz(&self) -> f32 {
        self.max_hz.min(self.sample_rate_hz / 2.0)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// Bad sample rate; hop not in `1..=65536`; more than 1024 harmonics or 4096 bands;
    /// `max_hz` not in `(0, 96 kHz]`.
    pub fn validate(&self) -> Result<(), DspError> {
        check_sample_rate(self.sample_rate_hz)?;
        if !(1..=1 << 16).contains(&self.hop_size) {
            return Err(DspError::invalid("hop_size", "must be in 1..=65536"));
        }
        if self.n_harmonics > MAX_HARMONICS {
            return Err(DspError::invalid("n_harmonics", "must be at most 1024"));
        }
        if self.n_noise_bands > MAX_NOISE_BANDS {
            return Err(DspError::invalid("n_noise_bands", "must be at most 4096"));
        }
        if !(self.max_hz.is_finite() && self.max_hz > 0.0 && self.max_hz <= MAX_BAND_HZ) {
            return Err(DspError::invalid("max_hz", "must be in (0, 96000] Hz"));
        }
        Ok(())
    }
}

/// Centre frequencies of the noise bands (linear or mel spaced over `0..=max_hz`), low
/// to high. Shared with the trainer's differentiable synthesiser.
pub fn noise_band_centres_hz(config: &SynthConfig) -> Vec<f32> {
    let m = config.n_noise_bands;
    (0..m)
        .map(|j| {
            let t = if m > 1 {
                j as f32 / (m - 1) as f32
            } else {
                0.0
            };
            match config.noise_band_spacing {
                NoiseBandSpacing::Linear => t * config.max_hz,
                NoiseBandSpacing::Mel => mel_to_hz(t * hz_to_mel(config.max_hz)),
            }
        })
        .collect()
}

/// Where frequency `f` lies among noise band centres spread up to `max_hz`: the band at or
/// below it and the fraction towards the next (the synthesiser interpolates linearly between
/// centres), or `None` above `max_hz` or without bands. One rule for the synthesiser, the
/// trainer's differentiable synthesiser and the morph's band map.
pub fn band_position(centres: &[f32], max_hz: f32, f: f32) -> Option<(usize, f32)> {
    let m = centres.len();
    if m == 0 || f > max_hz * (1.0 + 1e-6) {
        return None;
    }
    if m == 1 {
        return Some((0, 0.0));
    }
    let j = centres.partition_point(|&c| c <= f).clamp(1, m - 1) - 1;
    let width = (centres[j + 1] - centres[j]).max(f32::MIN_POSITIVE);
    Some((j, ((f - centres[j]) / width).clamp(0.0, 1.0)))
}

/// Controls for one frame (borrowed, so a caller can point into its own arrays).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameControls<'a> {
    /// Fundamental frequency; ≤ 0 or non-finite silences the harmonics.
    pub f0_hz: f32,
    /// Linear amplitude of the harmonic part (sum of harmonic amplitudes).
    pub amplitude: f32,
    /// Relative harmonic weights, normalised here after removing harmonics above Nyquist.
    pub harmonic_distribution: &'a [f32],
    /// Linear gains of the noise bands (low to high).
    pub noise_magnitudes: &'a [f32],
}

/// Harmonic-plus-noise synthesiser; see the [module docs](self).
pub struct HarmonicNoiseSynth {
    config: SynthConfig,
    /// Fundamental phase in cycles, in `[0, 1)`.
    phase_cycles: f64,
    /// f0 at the end of the previous hop; `None` after reset (start at the first frame's f0).
    previous_f0_hz: Option<f32>,
    /// Per-harmonic amplitude reached at the end of the previous hop.
    previous_amplitudes: Vec<f32>,
    /// Per-harmonic target amplitudes of the current frame (scratch).
    target_amplitudes: Vec<f32>,
    /// Per-harmonic amplitude at the hop start and its per-sample increment.
    amplitude_start: Vec<f32>,
    amplitude_step: Vec<f32>,
    /// Fundamental phasor `e^{iφ[n]}` for each sample of the hop (padded to whole chunks).
    base_re: Vec<f32>,
    base_im: Vec<f32>,
    /// PRNG state (xorshift64*), reseeded from [`NOISE_SEED`] by `reset`.
    rng_state: u64,
    noise_forward: Arc<dyn RealToComplex<f32>>,
    noise_inverse: Arc<dyn ComplexToReal<f32>>,
    noise_time: Vec<f32>,
    noise_spectrum: Vec<Complex32>,
    noise_scratch: Vec<Complex32>,
    /// For every FFT bin: lower band index and interpolation fraction (`u32::MAX` = above range).
    bin_band: Vec<(u32, f32)>,
    /// Sine window (over `2·hop_size`) times `noise_window_scale`.
    noise_window: Vec<f32>,
    /// The FFT normalisation times the sample-rate scaling.
    noise_window_scale: f32,
    /// The current frame's band magnitudes, cleaned (scratch).
    band_gains: Vec<f32>,
    /// The rest of the previous noise segment (unwindowed), falling over the next hop.
    noise_tail: Vec<f32>,
}

impl std::fmt::Debug for HarmonicNoiseSynth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarmonicNoiseSynth")
            .field("config", &self.config)
            .field("phase_cycles", &self.phase_cycles)
            .finish_non_exhaustive()
    }
}

#[inline]
fn clean_control(x: f32) -> f32 {
    if x.is_finite() && x > 0.0 {
        x.min(MAX_INPUT)
    } else {
        0.0
    }
}

fn hz_to_mel(f: f32) -> f32 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f32) -> f32 {
    700.0 * (10f32.powf(m / 2595.0) - 1.0)
}

impl HarmonicNoiseSynth {
    /// Validates the config, plans the noise FFTs and allocates every buffer.
    ///
    /// # Errors
    /// When [`SynthConfig::validate`] fails.
    pub fn new(config: SynthConfig) -> Result<Self, DspError> {
        config.validate()?;
        let hop = config.hop_size;
        let segment = 2 * hop;
        let mut planner = RealFftPlanner::<f32>::new();
        let noise_forward = planner.plan_fft_forward(segment);
        let noise_inverse = planner.plan_fft_inverse(segment);
        let scratch_len = noise_forward
            .get_scratch_len()
            .max(noise_inverse.get_scratch_len());
        let bins = segment / 2 + 1;

        // Band centres, then each bin's position between them.
        let centres = noise_band_centres_hz(&config);
        let bin_hz = config.sample_rate_hz / segment as f32;
        let bin_band = (0..bins)
            .map(|b| {
                band_position(&centres, config.max_hz, b as f32 * bin_hz)
                    .map_or((u32::MAX, 0.0), |(j, frac)| (j as u32, frac))
            })
            .collect();

        // realfft's inverse is unnormalised (× L); fold 1/L and the rate scaling into the window.
        let rate_scale = (config.sample_rate_hz / 2.0 / config.max_hz).sqrt();
        let noise_window_scale = rate_scale / segment as f32;
        let noise_window = (0..segment)
            .map(|n| {
                let w = (std::f32::consts::PI * (n as f32 + 0.5) / segment as f32).sin();
                w * noise_window_scale
            })
            .collect();

        let n = config.n_harmonics;
        Ok(Self {
            phase_cycles: 0.0,
            previous_f0_hz: None,
            previous_amplitudes: vec![0.0; n],
            target_amplitudes: vec![0.0; n],
            amplitude_start: vec![0.0; n],
            amplitude_step: vec![0.0; n],
            base_re: vec![0.0; hop.div_ceil(LANES) * LANES],
            base_im: vec![0.0; hop.div_ceil(LANES) * LANES],
            rng_state: NOISE_SEED,
            noise_time: noise_forward.make_input_vec(),
            noise_spectrum: noise_forward.make_output_vec(),
            noise_scratch: vec![Complex32::default(); scratch_len],
            noise_forward,
            noise_inverse,
            bin_band,
            noise_window,
            noise_window_scale,
            band_gains: vec![0.0; config.n_noise_bands],
            noise_tail: vec![0.0; hop],
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> SynthConfig {
        self.config
    }

    /// Control-to-output delay: a frame's values are reached at the end of the hop it is
    /// rendered into, one `hop_size` after the hop starts.
    pub fn latency_samples(&self) -> usize {
        self.config.hop_size
    }

    /// Back to time zero: phase 0, silence, PRNG reseeded. Does not allocate.
    pub fn reset(&mut self) {
        self.phase_cycles = 0.0;
        self.previous_f0_hz = None;
        self.previous_amplitudes.fill(0.0);
        self.rng_state = NOISE_SEED;
        self.noise_tail.fill(0.0);
    }

    /// Renders one hop for `controls` into `output` (overwritten). The hop may be shorter than
    /// `hop_size`, which is then the longest hop: at 44.1 kHz, 250 frames/s alternate between
    /// hops of 176 and 177 samples. The harmonic ramps span the hop actually rendered, and each
    /// noise segment rises over its own hop and falls over the next, so the overlap stays
    /// power-complementary for any sequence of hop lengths.
    ///
    /// # Panics
    /// If `output` is empty or longer than `hop_size`.
    ///
    /// # Examples
    /// ```
    /// use continuo::dsp::synth::{FrameControls, HarmonicNoiseSynth, SynthConfig};
    /// let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(16000.0, 64, 8, 16)).unwrap();
    /// let distribution = [1.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0];
    /// let noise = [0.01; 16];
    /// let mut hop = [0.0f32; 64];
    /// synth.process_frame(
    ///     &FrameControls {
    ///         f0_hz: 220.0,
    ///         amplitude: 0.5,
    ///         harmonic_distribution: &distribution,
    ///         noise_magnitudes: &noise,
    ///     },
    ///     &mut hop,
    /// );
    /// assert!(hop.iter().all(|x| x.is_finite() && x.abs() < 1.0));
    /// ```
    pub fn process_frame(&mut self, controls: &FrameControls<'_>, output: &mut [f32]) {
        assert!(
            (1..=self.config.hop_size).contains(&output.len()),
            "synth output must be 1..=hop_size samples"
        );
        self.render_harmonics(controls, output);
        self.render_noise(controls.noise_magnitudes, output);
    }

    /// Offline render through the same code: resets, then renders `frames.len() · hop_size`
    /// samples.
    pub fn render(&mut self, frames: &[FrameControls<'_>]) -> Vec<f32> {
        self.reset();
        let hop = self.config.hop_size;
        let mut output = vec![0.0; frames.len() * hop];
        for (frame, out) in frames.iter().zip(output.chunks_exact_mut(hop)) {
            self.process_frame(frame, out);
        }
        output
    }

    fn render_harmonics(&mut self, controls: &FrameControls<'_>, output: &mut [f32]) {
        let hop = output.len();
        let sample_rate = f64::from(self.config.sample_rate_hz);
        let nyquist = self.config.sample_rate_hz / 2.0;
        let ceiling = self.config.harmonic_ceiling_hz();
        let f0_end = clean_control(controls.f0_hz).min(nyquist);
        let f0_start = self.previous_f0_hz.unwrap_or(f0_end);
        let amplitude = clean_control(controls.amplitude);

        // Anti-aliasing mask over the whole hop, then renormalise the survivors.
        let f0_max = f0_start.max(f0_end);
        let n = self.config.n_harmonics;
        let valid = if f0_max > 0.0 {
            ((ceiling / f0_max).ceil() as usize)
                .saturating_sub(1)
                .min(n)
        } else {
            0
        };
        let weights = controls.harmonic_distribution;
        let total: f32 = (0..valid)
            .map(|k| clean_control(weights.get(k).copied().unwrap_or(0.0)))
            .sum();
        let gain = if total > 0.0 && total.is_finite() {
            amplitude / total
        } else {
            0.0
        };
        for k in 0..n {
            self.target_amplitudes[k] = if k < valid {
                gain * clean_control(weights.get(k).copied().unwrap_or(0.0))
            } else {
                0.0
            };
        }

        let inv_hop = 1.0 / hop as f32;
        for k in 0..valid {
            let start = self.previous_amplitudes[k];
            self.amplitude_start[k] = start;
            self.amplitude_step[k] = (self.target_amplitudes[k] - start) * inv_hop;
        }

        // Fundamental phasor per sample, from the exact phase φ0, the first increment ω[0] and
        // the increment's change per sample Δω (second-order recursion in f64, re-anchored
        // every hop so nothing drifts).
        let phase0 = std::f64::consts::TAU * self.phase_cycles;
        let f0_step = (f64::from(f0_end) - f64::from(f0_start)) / hop as f64;
        let omega0 = std::f64::consts::TAU * (f64::from(f0_start) + f0_step) / sample_rate;
        let delta = std::f64::consts::TAU * f0_step / sample_rate;
        let cmul = |a: (f64, f64), b: (f64, f64)| (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0);
        let mut phasor = (phase0.cos(), phase0.sin());
        let mut rotation = (omega0.cos(), omega0.sin());
        let step = (delta.cos(), delta.sin());
        let chunked = hop.div_ceil(LANES) * LANES;
        for (re, im) in self.base_re[..chunked]
            .iter_mut()
            .zip(self.base_im[..chunked].iter_mut())
        {
            *re = phasor.0 as f32;
            *im = phasor.1 as f32;
            phasor = cmul(phasor, rotation);
            rotation = cmul(rotation, step);
        }

        // y[n] = Σ_k a_k[n] · Im(e^{iφ[n]})^k: harmonic phasors by repeated multiplication
        // across k (stable: errors grow only linearly in k), eight samples at a time so the
        // loop vectorises and all state stays in registers.
        let starts = &self.amplitude_start[..valid];
        let steps = &self.amplitude_step[..valid];
        for (chunk, (base_re, base_im)) in self
            .base_re
            .chunks_exact(LANES)
            .zip(self.base_im.chunks_exact(LANES))
            .enumerate()
        {
            let n0 = chunk * LANES;
            if n0 >= hop {
                break;
            }
            let mut br = [0.0f32; LANES];
            let mut bi = [0.0f32; LANES];
            let mut ramp = [0.0f32; LANES];
            for l in 0..LANES {
                br[l] = base_re[l];
                bi[l] = base_im[l];
                ramp[l] = (n0 + l + 1) as f32;
            }
            let (mut zr, mut zi) = (br, bi);
            let mut acc = [0.0f32; LANES];
            for (&start, &slope) in starts.iter().zip(steps) {
                for l in 0..LANES {
                    acc[l] += (start + ramp[l] * slope) * zi[l];
                    let (r, i) = (zr[l], zi[l]);
                    zr[l] = r * br[l] - i * bi[l];
                    zi[l] = r * bi[l] + i * br[l];
                }
            }
            let n = LANES.min(hop - n0);
            output[n0..n0 + n].copy_from_slice(&acc[..n]);
        }

        // Advance the exact phase by Σ ω[n] (closed form for the linear ramp).
        let cycles = (hop as f64 * f64::from(f0_start)
            + (f64::from(f0_end) - f64::from(f0_start)) * (hop as f64 + 1.0) / 2.0)
            / sample_rate;
        self.phase_cycles = (self.phase_cycles + cycles).rem_euclid(1.0);
        self.previous_f0_hz = Some(f0_end);
        self.previous_amplitudes
            .copy_from_slice(&self.target_amplitudes);
    }

    /// xorshift64* (Vigna 2016): uniform in [-1, 1).
    #[inline]
    fn next_uniform(&mut self) -> f32 {
        let mut x = self.rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng_state = x;
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 * (2.0 / (1u64 << 24) as f32) - 1.0
    }

    fn render_noise(&mut self, magnitudes: &[f32], output: &mut [f32]) {
        let hop = output.len();
        // Always draw the segment so the noise stream does not depend on earlier controls.
        for i in 0..self.noise_time.len() {
            self.noise_time[i] = self.next_uniform();
        }
        let mut audible = false;
        for (j, gain) in self.band_gains.iter_mut().enumerate() {
            *gain = clean_control(magnitudes.get(j).copied().unwrap_or(0.0));
            audible |= *gain > 0.0;
        }
        let bands = &self.band_gains;
        if audible {
            let _ = self.noise_forward.process_with_scratch(
                &mut self.noise_time,
                &mut self.noise_spectrum,
                &mut self.noise_scratch,
            );
            for (bin, &(j, frac)) in self.noise_spectrum.iter_mut().zip(&self.bin_band) {
                let gain = match bands.get(j as usize) {
                    None => 0.0,
                    Some(&lo) => {
                        let hi = bands.get(j as usize + 1).copied().unwrap_or(lo);
                        lo + (hi - lo) * frac
                    }
                };
                *bin *= gain;
            }
            self.noise_spectrum[0].im = 0.0;
            if let Some(last) = self.noise_spectrum.last_mut() {
                last.im = 0.0;
            }
            let _ = self.noise_inverse.process_with_scratch(
                &mut self.noise_spectrum,
                &mut self.noise_time,
                &mut self.noise_scratch,
            );
        } else {
            self.noise_time.fill(0.0);
        }
        // The previous segment falls and this one rises over this hop: sin² + cos² = 1 for
        // any hop length. At the full hop this is the 2·hop sine window, precomputed.
        let full = self.config.hop_size;
        let scale = self.noise_window_scale;
        for (n, out) in output.iter_mut().enumerate() {
            let (rise, fall) = if hop == full {
                (self.noise_window[n], self.noise_window[full + n])
            } else {
                let angle = std::f32::consts::PI * (n as f32 + 0.5) / (2 * hop) as f32;
                (angle.sin() * scale, angle.cos() * scale)
            };
            *out += self.noise_tail[n] * fall + self.noise_time[n] * rise;
        }
        // This segment's second part falls over the next hop (windowed then).
        self.noise_tail
            .copy_from_slice(&self.noise_time[hop..hop + full]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::pitch::{PitchConfig, PitchTracker};
    use crate::dsp::test_signals::garbage_inputs;

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    /// Amplitude of the component at `freq_hz` (least-squares projection on sin/cos).
    fn component_amplitude(x: &[f32], freq_hz: f64, sample_rate_hz: f64) -> f32 {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (n, &v) in x.iter().enumerate() {
            let p = std::f64::consts::TAU * freq_hz * n as f64 / sample_rate_hz;
            s += f64::from(v) * p.sin();
            c += f64::from(v) * p.cos();
        }
        (2.0 * (s * s + c * c).sqrt() / x.len() as f64) as f32
    }

    fn constant_frames<'a>(
        n: usize,
        f0_hz: f32,
        amplitude: f32,
        harmonics: &'a [f32],
        noise: &'a [f32],
    ) -> Vec<FrameControls<'a>> {
        vec![
            FrameControls {
                f0_hz,
                amplitude,
                harmonic_distribution: harmonics,
                noise_magnitudes: noise,
            };
            n
        ]
    }

    #[test]
    fn single_harmonic_is_a_sine_of_requested_f0_and_amplitude() {
        let sr = 16000.0;
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 64, 16, 8)).unwrap();
        let mut distribution = [0.0f32; 16];
        distribution[0] = 1.0;
        let frames = constant_frames(250, 440.0, 0.5, &distribution, &[]);
        let audio = synth.render(&frames);
        let steady = &audio[1600..];
        let level = rms(steady);
        assert!((level - 0.5 / 2f32.sqrt()).abs() < 1e-3, "rms {level}");
        assert!((component_amplitude(steady, 440.0, 16000.0) - 0.5).abs() < 1e-3);
        let pitch = PitchTracker::track(steady, PitchConfig::new(sr, 128)).unwrap();
        for f in &pitch[8..pitch.len() - 8] {
            assert!((f.f0_hz - 440.0).abs() < 440.0 * 0.003, "{f:?}");
            assert!(f.is_voiced());
        }
    }

    #[test]
    fn harmonics_above_nyquist_are_removed_without_aliases() {
        // f0 = 1100 Hz at 16 kHz: harmonics 8..10 (8.8, 9.9, 11 kHz) are above Nyquist; if
        // synthesised they would alias to 7.2, 6.1 and 5.0 kHz, which are not harmonics of 1100.
        let sr = 16000.0;
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 128, 10, 0)).unwrap();
        let distribution = [1.0f32; 10];
        let frames = constant_frames(126, 1100.0, 0.7, &distribution, &[]);
        let audio = synth.render(&frames);
        let steady = &audio[1600..1600 + 16000 - 1600]; // whole number of cycles not needed: long
        let harmonic = component_amplitude(steady, 7700.0, 16000.0);
        assert!(
            (harmonic - 0.1).abs() < 2e-3,
            "renormalised 7th harmonic {harmonic}"
        );
        for alias in [7200.0, 6100.0, 5000.0] {
            let level = component_amplitude(steady, alias, 16000.0);
            let db = 20.0 * (level / harmonic).log10();
            assert!(db < -60.0, "alias at {alias} Hz: {db} dB");
        }
        // Sweeping f0 across the masking boundary must not alias either: with f0 rising from
        // 1550 to 1650 Hz, harmonic 5 crosses Nyquist at 1600 Hz, and harmonics 9 and 10 (always
        // masked) would alias into 50–1300 Hz, a band no legal partial reaches.
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 128, 10, 0)).unwrap();
        let mut audio = Vec::new();
        let mut out = [0.0f32; 128];
        for i in 0..250 {
            let f0 = 1550.0 + 100.0 * i as f32 / 250.0;
            synth.process_frame(
                &FrameControls {
                    f0_hz: f0,
                    amplitude: 0.7,
                    harmonic_distribution: &distribution,
                    noise_magnitudes: &[],
                },
                &mut out,
            );
            audio.extend_from_slice(&out);
        }
        let alias_band = dft_band_energy(&audio, sr, 50.0, 1300.0);
        let total = audio[4096..].iter().map(|x| x * x).sum::<f32>() / (audio.len() - 4096) as f32;
        let db = 10.0 * (alias_band / total).log10();
        assert!(db < -60.0, "alias energy in 50–1300 Hz: {db} dB");
    }

    /// Mean power in a band (Hann-windowed periodogram over 4096-sample frames).
    fn dft_band_energy(x: &[f32], sr: f32, lo_hz: f32, hi_hz: f32) -> f32 {
        use crate::dsp::stft::{Stft, StftConfig};
        let config = StftConfig {
            window_size: 4096,
            hop_size: 1024,
        };
        let frames = Stft::frames(x, config);
        let lo = (lo_hz / sr * 4096.0) as usize;
        let hi = (hi_hz / sr * 4096.0) as usize;
        let mut band = 0.0;
        let mut count = 0;
        for frame in &frames[4..frames.len() - 1] {
            band += frame[lo..=hi].iter().map(|c| c.norm_sqr()).sum::<f32>();
            count += 1;
        }
        // Parseval for a periodic Hann window: Σ|X|² ≈ N · Σ(xw)² ≈ N · mean(x²) · 3N/8.
        band * 2.0 / (count as f32 * 4096.0 * 4096.0 * 3.0 / 8.0)
    }

    #[test]
    fn phase_is_continuous_at_frame_boundaries_while_f0_moves() {
        let sr = 16000.0f32;
        let hop = 64;
        let n_harmonics = 8;
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, hop, n_harmonics, 0)).unwrap();
        let distribution = [1.0f32, 0.5, 0.3, 0.2, 0.1, 0.1, 0.05, 0.05];
        let amplitude = 0.8;
        let mut audio = Vec::new();
        let mut out = vec![0.0f32; hop];
        let mut max_f0 = 0.0f32;
        for i in 0..200 {
            // Jumpy f0 between frames: 200 ↔ 300 Hz alternating ramps.
            let f0 = if (i / 10) % 2 == 0 { 200.0 } else { 300.0 } + (i % 7) as f32 * 10.0;
            max_f0 = max_f0.max(f0);
            synth.process_frame(
                &FrameControls {
                    f0_hz: f0,
                    amplitude,
                    harmonic_distribution: &distribution,
                    noise_magnitudes: &[],
                },
                &mut out,
            );
            audio.extend_from_slice(&out);
        }
        // |dy/dn| ≤ Σ_k a_k · 2π k f0_max / sr  (+ the amplitude ramp, zero here after the fade-in).
        let total: f32 = distribution.iter().sum();
        let slope_bound: f32 = distribution
            .iter()
            .enumerate()
            .map(|(k, w)| {
                amplitude * w / total * std::f32::consts::TAU * (k + 1) as f32 * max_f0 / sr
            })
            .sum();
        let (mut max_jump, mut max_boundary_jump) = (0.0f32, 0.0f32);
        for n in (2 * hop)..audio.len() - 1 {
            let jump = (audio[n + 1] - audio[n]).abs();
            max_jump = max_jump.max(jump);
            if (n + 1) % hop == 0 {
                max_boundary_jump = max_boundary_jump.max(jump);
            }
        }
        assert!(
            max_jump <= slope_bound * 1.001,
            "max jump {max_jump} > bound {slope_bound}"
        );
        assert!(max_boundary_jump <= slope_bound * 1.001);
        assert!(
            max_boundary_jump > 0.1 * slope_bound,
            "test must exercise real slopes"
        );
    }

    #[test]
    fn noise_level_is_uniform_noise_level_and_reset_is_deterministic() {
        let sr = 16000.0;
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 128, 4, 65)).unwrap();
        let flat = [0.5f32; 65];
        let frames = constant_frames(125, 0.0, 0.0, &[], &flat);
        let a = synth.render(&frames);
        let expected = 0.5 / 3f32.sqrt();
        let level = rms(&a[256..]);
        assert!(
            (20.0 * (level / expected).log10()).abs() < 0.3,
            "noise rms {level}"
        );
        let b = synth.render(&frames);
        assert_eq!(a, b, "render must be reproducible");
        // Band-limited noise: only the lower quarter of the bands open.
        let mut low = [0.0f32; 65];
        low[..16].fill(1.0);
        let frames = constant_frames(125, 0.0, 0.0, &[], &low);
        let audio = synth.render(&frames);
        let inside = dft_band_energy(&audio, sr, 100.0, 1500.0);
        let outside = dft_band_energy(&audio, sr, 3000.0, 7900.0);
        assert!(10.0 * (outside / inside).log10() < -40.0);
    }

    #[test]
    fn mel_bands_and_sample_rate_independence() {
        let harmonics = [0.6f32, 0.3, 0.1];
        let noise = [0.2f32; 32];
        let mut levels = Vec::new();
        for sr in [16000.0f32, 48000.0] {
            let hop = (sr / 250.0) as usize;
            let mut config = SynthConfig::new(sr, hop, 3, 32);
            config.noise_band_spacing = NoiseBandSpacing::Mel;
            config.max_hz = 8000.0;
            let mut synth = HarmonicNoiseSynth::new(config).unwrap();
            let tone = synth.render(&constant_frames(200, 330.0, 0.5, &harmonics, &[]));
            let noise = synth.render(&constant_frames(200, 0.0, 0.0, &[], &noise));
            let skip = 4 * hop;
            levels.push((
                rms(&tone[skip..]),
                rms(&noise[skip..]),
                component_amplitude(&tone[skip..], 660.0, f64::from(sr)),
            ));
        }
        let (a, b) = (levels[0], levels[1]);
        assert!((a.0 - b.0).abs() < 1e-3, "{levels:?}");
        assert!((20.0 * (a.1 / b.1).log10()).abs() < 0.5, "{levels:?}");
        assert!(
            (a.2 - 0.15).abs() < 1e-3 && (b.2 - 0.15).abs() < 1e-3,
            "{levels:?}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// The optimised renderer matches a naive f64 sum of sines with the documented
        /// interpolation (f0 and per-harmonic amplitudes linear across each hop, phase = Σ ω).
        #[test]
        fn harmonics_match_naive_reference(
            f0s in proptest::collection::vec(60.0f32..900.0, 3),
            amplitudes in proptest::collection::vec(0.0f32..1.0, 3),
            weights in proptest::collection::vec(0.0f32..1.0, 3 * 12),
            hop in 16usize..200,
        ) {
            let sr = 16000.0f32;
            let n_harmonics = 12;
            let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, hop, n_harmonics, 0)).unwrap();
            let frames: Vec<FrameControls> = (0..3)
                .map(|i| FrameControls {
                    f0_hz: f0s[i],
                    amplitude: amplitudes[i],
                    harmonic_distribution: &weights[i * n_harmonics..(i + 1) * n_harmonics],
                    noise_magnitudes: &[],
                })
                .collect();
            let fast = synth.render(&frames);

            let nyquist = f64::from(sr) / 2.0;
            let mut phase = 0.0f64;
            let mut previous_f0 = f64::from(f0s[0]);
            let mut previous_amps = vec![0.0f64; n_harmonics];
            let mut reference = Vec::new();
            for frame in &frames {
                let f0 = f64::from(frame.f0_hz);
                let f_max = previous_f0.max(f0);
                let valid: Vec<bool> = (1..=n_harmonics).map(|k| (k as f64) * f_max < nyquist).collect();
                let total: f64 = (0..n_harmonics)
                    .filter(|&k| valid[k])
                    .map(|k| f64::from(frame.harmonic_distribution[k]))
                    .sum();
                let targets: Vec<f64> = (0..n_harmonics)
                    .map(|k| if valid[k] && total > 0.0 {
                        f64::from(frame.amplitude) * f64::from(frame.harmonic_distribution[k]) / total
                    } else { 0.0 })
                    .collect();
                for n in 0..hop {
                    let t = (n + 1) as f64 / hop as f64;
                    let y: f64 = (0..n_harmonics)
                        .filter(|&k| valid[k])
                        .map(|k| {
                            let a = previous_amps[k] + (targets[k] - previous_amps[k]) * t;
                            a * ((k + 1) as f64 * phase).sin()
                        })
                        .sum();
                    reference.push(y as f32);
                    let f = previous_f0 + (f0 - previous_f0) * t;
                    phase += std::f64::consts::TAU * f / f64::from(sr);
                }
                previous_f0 = f0;
                previous_amps = targets;
            }
            let max_error = fast
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            proptest::prop_assert!(max_error < 2e-4, "max error {}", max_error);
        }
    }

    #[test]
    fn garbage_controls_give_finite_audio() {
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(16000.0, 64, 8, 8)).unwrap();
        let mut out = [0.0f32; 64];
        for (name, values) in garbage_inputs(8) {
            for &f0 in &[f32::NAN, f32::INFINITY, -5.0, 0.0, 1e-40, 1e9, 440.0] {
                synth.process_frame(
                    &FrameControls {
                        f0_hz: f0,
                        amplitude: values.first().copied().unwrap_or(f32::NAN),
                        harmonic_distribution: &values,
                        noise_magnitudes: &values,
                    },
                    &mut out,
                );
                assert!(out.iter().all(|x| x.is_finite()), "{name} f0 {f0}");
                assert!(out.iter().all(|x| x.abs() < 1e7), "{name} f0 {f0}");
            }
        }
        // DC control (f0 = 0 with amplitude) must not produce a DC offset.
        synth.reset();
        let ones = [1.0f32; 8];
        let frames = constant_frames(20, 0.0, 1.0, &ones, &[]);
        assert!(synth.render(&frames).iter().all(|&x| x == 0.0));
        assert!(HarmonicNoiseSynth::new(SynthConfig::new(16000.0, 0, 8, 8)).is_err());
    }

    /// 44.1 kHz at 250 frames/s: hops of 176 and 177 samples. The harmonic stays one
    /// phase-continuous sine, and the noise keeps its level right across hop boundaries.
    #[test]
    fn uneven_hops_keep_the_sine_continuous_and_the_noise_level_steady() {
        let sr = 44_100.0f32;
        let lengths: Vec<usize> = (0..500u64)
            .map(|j| ((j + 1) * 44_100 / 250 - j * 44_100 / 250) as usize)
            .collect();
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 177, 1, 0)).unwrap();
        let mut out = Vec::new();
        let mut hop = [0.0f32; 177];
        for &len in &lengths {
            synth.process_frame(
                &FrameControls {
                    f0_hz: 1000.0,
                    amplitude: 0.5,
                    harmonic_distribution: &[1.0],
                    noise_magnitudes: &[],
                },
                &mut hop[..len],
            );
            out.extend_from_slice(&hop[..len]);
        }
        // After the first hop (the fade-in from silence).
        let worst = out
            .iter()
            .enumerate()
            .skip(lengths[0])
            .map(|(n, &y)| {
                let want = 0.5 * (std::f64::consts::TAU * 1000.0 * n as f64 / 44_100.0).sin();
                (f64::from(y) - want).abs()
            })
            .fold(0.0f64, f64::max);
        assert!(worst < 1e-3, "max deviation from the ideal sine {worst:e}");

        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, 177, 1, 8)).unwrap();
        let (mut near_edges, mut middles) = (Vec::new(), Vec::new());
        let mut all = Vec::new();
        for &len in &lengths {
            synth.process_frame(
                &FrameControls {
                    f0_hz: 0.0,
                    amplitude: 0.0,
                    harmonic_distribution: &[0.0],
                    noise_magnitudes: &[0.3; 8],
                },
                &mut hop[..len],
            );
            near_edges.extend_from_slice(&hop[..8]);
            middles.extend_from_slice(&hop[len / 2 - 4..len / 2 + 4]);
            all.extend_from_slice(&hop[..len]);
        }
        let expected = 0.3 / 3f32.sqrt();
        let level = rms(&all[2000..]);
        assert!(
            (level / expected - 1.0).abs() < 0.05,
            "{level} vs {expected}"
        );
        let ratio = rms(&near_edges) / rms(&middles);
        assert!((ratio - 1.0).abs() < 0.1, "edge/middle level ratio {ratio}");
    }

    /// A model trained to fill 8 kHz, rendered at 48 kHz: no harmonic above its band and no
    /// noise above it, while the levels inside the band stay what the model asked for.
    #[test]
    fn a_band_below_nyquist_stops_harmonics_and_noise_there() {
        let sr = 48_000.0f32;
        let config = SynthConfig {
            max_hz: 8_000.0,
            ..SynthConfig::new(sr, 192, 20, 16)
        };
        let mut synth = HarmonicNoiseSynth::new(config).unwrap();
        let weights = [1.0f32; 20];
        let frames = constant_frames(250, 1_000.0, 0.5, &weights, &[0.05; 16]);
        let out = synth.render(&frames);
        let steady = &out[4_800..];
        let above = dft_band_energy(steady, sr, 8_500.0, 24_000.0);
        let inside = dft_band_energy(steady, sr, 500.0, 7_500.0);
        assert!(
            above < 1e-4 * inside,
            "above the band {above:e}, inside {inside:e}"
        );
        // Harmonics 1..=7 share the amplitude (8 kHz itself is excluded).
        let a1 = component_amplitude(steady, 1_000.0, f64::from(sr));
        assert!((a1 - 0.5 / 7.0).abs() < 0.01, "first harmonic {a1}");
    }
}
