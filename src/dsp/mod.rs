//! Signal processing shared by the plugins, the CLI and the trainer: one implementation of every
//! feature, so training and serving never disagree. Pure: no plugin or ML dependencies.
//!
//! # Contract of the layer
//!
//! - **Blocks are plain structs** with `new(config) -> Result<Self, DspError>` (or a panicking
//!   `new` documented under `# Panics` for the older [`stft`] API), `reset()` and a `process_*`
//!   method. Everything is allocated in `new`; the `process_*` methods never allocate. Offline
//!   helpers (`*_offline`, [`analysis::analyze`], [`synth::HarmonicNoiseSynth::render`], the
//!   [`metrics`]) allocate their result and are not for the audio thread.
//! - **Units are in the names**: `_hz`, `_db`, `_samples`, `_s`. Gains are linear unless the name
//!   ends in `_db`. Audio is `f32` in full-scale units (±1.0 = 0 dBFS peak).
//! - **Latency is a number**: every streaming block reports the delay it adds with
//!   `latency_samples()`, and the offline helpers compensate it so that feature frame `i` is
//!   centred on input sample `i · hop_size` (the librosa `center=True` convention; there are
//!   `len / hop + 1` frames).
//! - **Garbage in, finite out**: every public entry point passes its audio input through
//!   [`sanitize_sample`] (NaN/±Inf → 0, subnormals → 0, magnitudes clamped to ±[`MAX_INPUT`]),
//!   and control inputs through similar guards, so outputs are always finite and nothing panics
//!   on silence, DC or clipping. Panics are reserved for API misuse (wrong slice lengths) and are
//!   documented under `# Panics`.
//! - **Deterministic**: noise comes from a fixed-seed PRNG that `reset()` restores.
//!
//! Modules, each using only those listed before it: [`stft`] → [`pitch`], [`loudness`],
//! [`onset`] → [`synth`], [`resample`] → [`metrics`] → [`analysis`], [`notes`].

pub mod stft;

pub mod loudness;
pub mod onset;
pub mod pitch;

pub mod resample;
pub mod synth;

pub mod metrics;

pub mod analysis;
pub mod notes;

/// Largest input magnitude the layer passes on. Real audio never gets near it; the clamp only
/// keeps squared sums (energy, power spectra) far from `f32` overflow on garbage input.
pub const MAX_INPUT: f32 = 1.0e6;

/// Lowest level any `_db` output reports (the floor replaces `-inf` for silence).
pub const DB_FLOOR: f32 = -120.0;

/// Errors from building DSP blocks with an invalid configuration.
///
/// Tiny and `Copy` (no heap data) so it can be returned anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DspError {
    /// A configuration value is out of its valid range.
    #[error("invalid {parameter}: {reason}")]
    InvalidConfig {
        /// Name of the offending field.
        parameter: &'static str,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl DspError {
    pub(crate) const fn invalid(parameter: &'static str, reason: &'static str) -> Self {
        DspError::InvalidConfig { parameter, reason }
    }
}

/// Maps one input sample to a safe value: NaN and ±Inf become 0, subnormals become 0 (they are
/// slow on x86 and inaudible), and finite values are clamped to ±[`MAX_INPUT`].
#[inline]
pub fn sanitize_sample(x: f32) -> f32 {
    if x.is_finite() && x.abs() >= f32::MIN_POSITIVE {
        x.clamp(-MAX_INPUT, MAX_INPUT)
    } else {
        0.0
    }
}

/// Copies `input` into `output` through [`sanitize_sample`].
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub fn sanitize_into(input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "sanitize_into: length mismatch");
    for (o, &i) in output.iter_mut().zip(input) {
        *o = sanitize_sample(i);
    }
}

/// MIDI note number (fractional) of a frequency: `69 + 12·log2(f / 440)`.
#[inline]
pub fn hz_to_midi(f_hz: f32) -> f32 {
    69.0 + 12.0 * (f_hz.max(1e-3) / 440.0).log2()
}

/// Frequency of a (fractional) MIDI note number, the inverse of [`hz_to_midi`].
#[inline]
pub fn midi_to_hz(pitch: f32) -> f32 {
    440.0 * 2f32.powf((pitch - 69.0) / 12.0)
}

/// Power ratio to dB with the layer's floor ([`DB_FLOOR`]); finite for every input.
#[inline]
pub fn power_to_db(power: f32) -> f32 {
    if power.is_nan() || power <= 0.0 {
        return DB_FLOOR;
    }
    (10.0 * power.log10()).clamp(DB_FLOOR, -DB_FLOOR)
}

pub(crate) fn check_sample_rate(sample_rate_hz: f32) -> Result<(), DspError> {
    if sample_rate_hz.is_finite() && (1000.0..=1.0e6).contains(&sample_rate_hz) {
        Ok(())
    } else {
        Err(DspError::invalid(
            "sample_rate_hz",
            "must be between 1 kHz and 1 MHz",
        ))
    }
}

/// Dot product with 8 independent partial sums, so the compiler can vectorise it (a plain
/// iterator `sum` is a serial dependency chain in strict IEEE order).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Number of centred feature frames for a signal of `len` samples at `hop_size`
/// (`len / hop + 1`, librosa's `center=True` count).
pub fn centered_frame_count(len: usize, hop_size: usize) -> usize {
    len / hop_size.max(1) + 1
}

/// Drives a streaming, hop-by-hop analyser over a whole signal so that the frame it reports is
/// centred on `i · hop` for `i` in `0..centered_frame_count(len, hop)`.
///
/// `push_hop(hop_input)` feeds one hop to the analyser and returns the frame it produced; the
/// analyser is assumed to describe input sample `end − latency_samples`, where `end` is the
/// (exclusive) index just past the hop just pushed (a window of `W` samples centred on its
/// middle has latency `W / 2`). Zeros are fed before the signal (to make the total delay a whole number of hops) and
/// after it (to flush the lookahead). Input is sanitised here.
pub(crate) fn run_centered<T>(
    signal: &[f32],
    hop: usize,
    latency_samples: usize,
    mut push_hop: impl FnMut(&[f32]) -> T,
) -> Vec<T> {
    let hop = hop.max(1);
    let n_frames = centered_frame_count(signal.len(), hop);
    // Zeros in front so that latency + pad is a whole, non-zero number of hops.
    let mut pad = (hop - latency_samples % hop) % hop;
    if latency_samples + pad == 0 {
        pad = hop;
    }
    let delay_hops = (latency_samples + pad) / hop;
    let total_hops = n_frames + delay_hops - 1;
    let mut frames = Vec::with_capacity(n_frames);
    let mut hop_buffer = vec![0.0f32; hop];
    for j in 0..total_hops {
        for (n, slot) in hop_buffer.iter_mut().enumerate() {
            let padded_index = j * hop + n;
            *slot = padded_index
                .checked_sub(pad)
                .and_then(|i| signal.get(i))
                .map_or(0.0, |&x| sanitize_sample(x));
        }
        let frame = push_hop(&hop_buffer);
        if j + 1 >= delay_hops {
            frames.push(frame);
        }
    }
    frames
}

#[cfg(test)]
pub(crate) mod test_signals {
    //! Deterministic test signals shared by the module tests.

    use std::f64::consts::TAU;

    /// Small xorshift PRNG for test noise (deterministic, no dependency).
    pub struct TestRng(u64);

    impl TestRng {
        pub fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }
        /// Uniform in [-1, 1).
        pub fn uniform(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        /// Approximately standard normal (sum of 4 uniforms, rescaled).
        pub fn gaussian(&mut self) -> f32 {
            let s: f32 = (0..4).map(|_| self.uniform()).sum();
            s * (3.0f32 / 4.0).sqrt()
        }
    }

    pub fn sine(freq_hz: f64, amplitude: f32, sample_rate_hz: f64, len: usize) -> Vec<f32> {
        (0..len)
            .map(|n| amplitude * (TAU * freq_hz * n as f64 / sample_rate_hz).sin() as f32)
            .collect()
    }

    /// Adds white Gaussian noise at the given SNR (dB) relative to the signal's mean power.
    pub fn add_noise(signal: &mut [f32], snr_db: f32, seed: u64) {
        let power = signal.iter().map(|x| x * x).sum::<f32>() / signal.len().max(1) as f32;
        let noise_rms = (power / 10f32.powf(snr_db / 10.0)).sqrt();
        let mut rng = TestRng::new(seed);
        for x in signal.iter_mut() {
            *x += noise_rms * rng.gaussian();
        }
    }

    /// The garbage inputs every entry point must survive.
    pub fn garbage_inputs(len: usize) -> Vec<(&'static str, Vec<f32>)> {
        let mut clipped = sine(220.0, 4.0, 16000.0, len);
        clipped.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
        vec![
            ("nan", vec![f32::NAN; len]),
            ("inf", vec![f32::INFINITY; len]),
            (
                "mixed",
                (0..len)
                    .map(|n| match n % 4 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        2 => 1.0e-40,
                        _ => f32::MAX,
                    })
                    .collect(),
            ),
            ("denormal", vec![1.0e-41; len]),
            ("silence", vec![0.0; len]),
            ("dc", vec![1.0; len]),
            ("clipped", clipped),
            ("empty", Vec::new()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_maps_garbage_to_finite() {
        assert_eq!(sanitize_sample(f32::NAN), 0.0);
        assert_eq!(sanitize_sample(f32::INFINITY), 0.0);
        assert_eq!(sanitize_sample(1.0e-40), 0.0);
        assert_eq!(sanitize_sample(f32::MAX), MAX_INPUT);
        assert_eq!(sanitize_sample(-0.5), -0.5);
        assert_eq!(power_to_db(0.0), DB_FLOOR);
        assert_eq!(power_to_db(f32::NAN), DB_FLOOR);
        assert!((power_to_db(0.01) + 20.0).abs() < 1e-4);
    }

    #[test]
    fn run_centered_aligns_frames_to_hop_multiples() {
        // An "analyser" with latency 5 that reports the sample `latency` before the hop's end.
        let signal: Vec<f32> = (0..40).map(|n| n as f32 + 1.0).collect();
        let hop = 4;
        let latency = 5;
        let mut history: Vec<f32> = Vec::new();
        let frames = run_centered(&signal, hop, latency, |h| {
            history.extend_from_slice(h);
            history
                .len()
                .checked_sub(latency)
                .map_or(-1.0, |index| history[index])
        });
        assert_eq!(frames.len(), centered_frame_count(signal.len(), hop));
        // Frame i must describe sample i·hop ("latency before the end" of the pushed input is
        // index end - latency, with `end` exclusive).
        for (i, &value) in frames.iter().enumerate() {
            let expected = signal.get(i * hop).copied().unwrap_or(0.0);
            assert_eq!(value, expected, "frame {i}");
        }
    }
}
