//! Evaluation metrics shared by the trainer, the CLI and the tests. Offline (they allocate).
//! Every function sanitises its input and returns a finite number.
//!
//! - [`multiscale_spectral_distance`]: the DDSP multi-scale spectral loss (Engel et al. 2020,
//!   §4.2.1; Wang et al. 2019) as a distance. For each FFT size `n` in
//!   [`SPECTRAL_SCALES`] (2048 … 64) with 75 % overlap (hop `n/4`, periodic Hann):
//!   `mean |S − Ŝ| + mean |ln(S + ε) − ln(Ŝ + ε)|` over all frames × bins, where `S` is the
//!   magnitude divided by the window sum (so a sine of amplitude `a` peaks at `a/2` at every
//!   scale, making scales comparable) and `ε = 1e-5`. The result is the average over scales.
//!   Signals of different lengths are compared over the shorter one.
//! - [`raw_pitch_accuracy`] / [`raw_chroma_accuracy`]: the MIREX / mir_eval definitions, on frames
//!   voiced in the reference: the fraction whose estimate lies within 50 cents of the reference
//!   (for chroma, after folding the difference into one octave). Estimates ≤ 0 or non-finite
//!   count as misses. With no reference-voiced frame the result is 0.
//! - [`loudness_l1_db`]: mean absolute difference of two loudness curves in dB.
//! - [`snr_db`]: `10·log10(Σ ref² / Σ (ref − est)²)`, clamped to ±[`SNR_LIMIT_DB`].

use realfft::num_complex::Complex32;

use crate::dsp::sanitize_sample;
use crate::dsp::stft::{StftAnalyzer, StftConfig};

/// FFT sizes of the multi-scale spectral distance (DDSP's loss uses these six).
pub const SPECTRAL_SCALES: [usize; 6] = [2048, 1024, 512, 256, 128, 64];

/// Added to magnitudes before the log in the spectral distance.
pub const LOG_EPSILON: f32 = 1e-5;

/// Bound on [`snr_db`] (identical signals would otherwise give +∞).
pub const SNR_LIMIT_DB: f32 = 200.0;

/// Tolerance of the pitch accuracies, in cents.
pub const PITCH_TOLERANCE_CENTS: f32 = 50.0;

/// Normalised magnitude frames of a (sanitised) signal at one scale.
fn magnitude_frames(signal: &[f32], window_size: usize) -> Vec<Vec<f32>> {
    let hop = window_size / 4;
    let config = StftConfig {
        window_size,
        hop_size: hop,
    };
    // Sizes are constants ≥ 64, so construction cannot fail.
    let Ok(mut analyzer) = StftAnalyzer::new(config) else {
        return Vec::new();
    };
    let scale = 1.0 / analyzer.window().iter().sum::<f32>();
    let mut hop_buffer = vec![0.0f32; hop];
    // Frames until the last sample has left the window's first hop.
    let hops = (signal.len() + window_size - hop).div_ceil(hop).max(1);
    let mut frames = Vec::with_capacity(hops);
    for k in 0..hops {
        for (n, slot) in hop_buffer.iter_mut().enumerate() {
            *slot = signal.get(k * hop + n).map_or(0.0, |&x| sanitize_sample(x));
        }
        let spectrum: &[Complex32] = analyzer.process_hop(&hop_buffer);
        frames.push(spectrum.iter().map(|c| c.norm() * scale).collect());
    }
    frames
}

/// Multi-scale spectral distance (linear + log magnitude L1, averaged over scales); see the
/// [module docs](self). 0 for identical signals, grows with the difference.
pub fn multiscale_spectral_distance(reference: &[f32], estimate: &[f32]) -> f32 {
    let len = reference.len().min(estimate.len());
    let (reference, estimate) = (&reference[..len], &estimate[..len]);
    let mut total = 0.0f64;
    for &size in &SPECTRAL_SCALES {
        let a = magnitude_frames(reference, size);
        let b = magnitude_frames(estimate, size);
        let (mut linear, mut log, mut count) = (0.0f64, 0.0f64, 0usize);
        for (fa, fb) in a.iter().zip(&b) {
            for (&x, &y) in fa.iter().zip(fb) {
                linear += f64::from((x - y).abs());
                log += f64::from(((x + LOG_EPSILON).ln() - (y + LOG_EPSILON).ln()).abs());
                count += 1;
            }
        }
        if count > 0 {
            total += (linear + log) / count as f64;
        }
    }
    let distance = (total / SPECTRAL_SCALES.len() as f64) as f32;
    if distance.is_finite() {
        distance
    } else {
        0.0
    }
}

/// Signed difference in cents `1200·log2(estimate / reference)`, or `None` when either is not a
/// positive finite frequency.
fn cents(reference_hz: f32, estimate_hz: f32) -> Option<f32> {
    let valid = |f: f32| f.is_finite() && f > 0.0;
    (valid(reference_hz) && valid(estimate_hz))
        .then(|| 1200.0 * (f64::from(estimate_hz) / f64::from(reference_hz)).log2() as f32)
}

fn accuracy(
    reference_f0_hz: &[f32],
    reference_voiced: &[bool],
    estimate_f0_hz: &[f32],
    fold_octaves: bool,
) -> f32 {
    let mut voiced = 0usize;
    let mut hits = 0usize;
    for ((&r, &v), &e) in reference_f0_hz
        .iter()
        .zip(reference_voiced)
        .zip(estimate_f0_hz)
    {
        if !(v && r.is_finite() && r > 0.0) {
            continue;
        }
        voiced += 1;
        if let Some(mut c) = cents(r, e) {
            if fold_octaves {
                c = c - 1200.0 * (c / 1200.0).round();
            }
            if c.abs() <= PITCH_TOLERANCE_CENTS {
                hits += 1;
            }
        }
    }
    if voiced == 0 {
        0.0
    } else {
        hits as f32 / voiced as f32
    }
}

/// Raw pitch accuracy: fraction of reference-voiced frames (with a positive reference f0) whose
/// estimate is within 50 cents. Slices are compared over their common length.
pub fn raw_pitch_accuracy(
    reference_f0_hz: &[f32],
    reference_voiced: &[bool],
    estimate_f0_hz: &[f32],
) -> f32 {
    accuracy(reference_f0_hz, reference_voiced, estimate_f0_hz, false)
}

/// Raw chroma accuracy: as [`raw_pitch_accuracy`] but octave errors are forgiven.
pub fn raw_chroma_accuracy(
    reference_f0_hz: &[f32],
    reference_voiced: &[bool],
    estimate_f0_hz: &[f32],
) -> f32 {
    accuracy(reference_f0_hz, reference_voiced, estimate_f0_hz, true)
}

/// Mean absolute difference of two loudness curves (dB) over their common length; non-finite
/// values count as the −120 dB floor. 0 for empty input.
pub fn loudness_l1_db(reference_db: &[f32], estimate_db: &[f32]) -> f32 {
    let clean = |x: f32| {
        if x.is_finite() {
            x.clamp(crate::dsp::DB_FLOOR, -crate::dsp::DB_FLOOR)
        } else {
            crate::dsp::DB_FLOOR
        }
    };
    let n = reference_db.len().min(estimate_db.len());
    if n == 0 {
        return 0.0;
    }
    reference_db
        .iter()
        .zip(estimate_db)
        .map(|(&a, &b)| (clean(a) - clean(b)).abs())
        .sum::<f32>()
        / n as f32
}

/// Signal-to-noise ratio of `estimate` against `reference` (common length), in dB:
/// `10·log10(Σ ref² / Σ (ref − est)²)`, clamped to ±[`SNR_LIMIT_DB`]; 0 dB when both sums are 0.
pub fn snr_db(reference: &[f32], estimate: &[f32]) -> f32 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&r, &e) in reference.iter().zip(estimate) {
        let (r, e) = (f64::from(sanitize_sample(r)), f64::from(sanitize_sample(e)));
        signal += r * r;
        noise += (r - e) * (r - e);
    }
    if signal == 0.0 && noise == 0.0 {
        return 0.0;
    }
    let ratio = 10.0 * (signal.max(1e-300) / noise.max(1e-300)).log10();
    (ratio as f32).clamp(-SNR_LIMIT_DB, SNR_LIMIT_DB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_signals::{garbage_inputs, sine, TestRng};

    #[test]
    fn spectral_distance_is_zero_for_identical_and_grows_with_noise() {
        let clean = sine(440.0, 0.5, 16000.0, 8000);
        assert_eq!(multiscale_spectral_distance(&clean, &clean), 0.0);
        let mut previous = 0.0;
        for level in [0.001f32, 0.01, 0.05, 0.2, 0.5] {
            let mut rng = TestRng::new(11);
            let noisy: Vec<f32> = clean.iter().map(|x| x + level * rng.uniform()).collect();
            let d = multiscale_spectral_distance(&clean, &noisy);
            assert!(
                d > previous,
                "noise {level}: distance {d} not above {previous}"
            );
            previous = d;
        }
    }

    #[test]
    fn spectral_distance_known_value_for_gain_change() {
        // Halving broadband noise shifts every log magnitude by ln 2 (all bins are far above ε),
        // and the normalised linear magnitudes of this noise are a few hundredths: the distance
        // is ln 2 plus a small linear part.
        let mut rng = TestRng::new(21);
        let x: Vec<f32> = (0..8192).map(|_| 0.5 * rng.uniform()).collect();
        let half: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
        let d = multiscale_spectral_distance(&x, &half);
        let ln2 = std::f32::consts::LN_2;
        assert!(d > ln2 - 0.01 && d < ln2 + 0.05, "distance {d}");
        // Symmetric.
        assert!((d - multiscale_spectral_distance(&half, &x)).abs() < 1e-6);
    }

    #[test]
    fn pitch_accuracy_known_values() {
        let reference: Vec<f32> = (0..100).map(|i| 100.0 + 5.0 * i as f32).collect();
        let voiced = vec![true; 100];
        let shift = |cents: f32| -> Vec<f32> {
            reference
                .iter()
                .map(|f| f * 2f32.powf(cents / 1200.0))
                .collect()
        };
        assert_eq!(raw_pitch_accuracy(&reference, &voiced, &shift(30.0)), 1.0);
        assert_eq!(raw_pitch_accuracy(&reference, &voiced, &shift(-30.0)), 1.0);
        assert_eq!(raw_pitch_accuracy(&reference, &voiced, &shift(60.0)), 0.0);
        // An octave error is a pitch miss but a chroma hit.
        assert_eq!(raw_pitch_accuracy(&reference, &voiced, &shift(1200.0)), 0.0);
        assert_eq!(
            raw_chroma_accuracy(&reference, &voiced, &shift(1200.0 + 30.0)),
            1.0
        );
        assert_eq!(
            raw_chroma_accuracy(&reference, &voiced, &shift(-2400.0 - 60.0)),
            0.0
        );
        // Only reference-voiced frames count; half of them wrong → 0.5.
        let mut estimate = reference.clone();
        let mut voiced_half = vec![false; 100];
        for i in 0..50 {
            voiced_half[i] = true;
            if i % 2 == 0 {
                estimate[i] *= 2.0;
            }
        }
        // Unvoiced in the reference: ignored whatever the estimate.
        estimate[50..].fill(0.0);
        assert_eq!(raw_pitch_accuracy(&reference, &voiced_half, &estimate), 0.5);
        assert_eq!(
            raw_pitch_accuracy(&reference, &[false; 100], &reference),
            0.0
        );
    }

    #[test]
    fn snr_and_loudness_known_values() {
        let reference = sine(300.0, 1.0, 16000.0, 16000);
        // Noise at exactly 1/10 of the amplitude of the same sine shape → 20 dB.
        let estimate: Vec<f32> = reference.iter().map(|x| x * 1.1).collect();
        assert!((snr_db(&reference, &estimate) - 20.0).abs() < 1e-3);
        let mut rng = TestRng::new(5);
        let noise: Vec<f32> = (0..16000).map(|_| rng.gaussian()).collect();
        let noise_power = noise.iter().map(|x| x * x).sum::<f32>() / 16000.0;
        let scale = (0.5 / noise_power / 100.0).sqrt(); // sine power 0.5, 20 dB below
        let noisy: Vec<f32> = reference
            .iter()
            .zip(&noise)
            .map(|(x, n)| x + scale * n)
            .collect();
        assert!((snr_db(&reference, &noisy) - 20.0).abs() < 0.05);
        assert_eq!(snr_db(&reference, &reference), SNR_LIMIT_DB);
        assert_eq!(loudness_l1_db(&[-10.0, -20.0], &[-13.0, -19.0]), 2.0);
        assert_eq!(loudness_l1_db(&[], &[]), 0.0);
    }

    #[test]
    fn garbage_in_gives_finite_metrics() {
        let good = sine(440.0, 0.5, 16000.0, 3000);
        for (name, bad) in garbage_inputs(3000) {
            for (a, b) in [(&good, &bad), (&bad, &good), (&bad, &bad)] {
                assert!(multiscale_spectral_distance(a, b).is_finite(), "{name}");
                assert!(snr_db(a, b).is_finite(), "{name}");
                assert!(loudness_l1_db(a, b).is_finite(), "{name}");
                let voiced = vec![true; a.len()];
                assert!(raw_pitch_accuracy(a, &voiced, b).is_finite(), "{name}");
                assert!(raw_chroma_accuracy(a, &voiced, b).is_finite(), "{name}");
            }
        }
    }
}
