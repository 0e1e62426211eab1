//! Host-rate ↔ model-rate resampling: a thin streaming wrapper over rubato, plus an exact
//! pass-through when the rates match. Rates with a short period (48 ↔ 16 kHz is 3 : 1) use the
//! synchronous FFT resampler (`rubato::Fft`); rates whose period is long (44.1 ↔ 16 kHz is
//! 441 : 160, which makes the FFT resampler work in 10 ms blocks with a long filter) use the
//! asynchronous sinc resampler (`rubato::Async`, 64 taps) instead.
//!
//! # Contract
//! - Input: fixed chunks of [`StreamingResampler::input_chunk_size`] mono samples, sanitised on
//!   entry. Output: a variable number of samples per chunk (at most
//!   [`StreamingResampler::output_frames_max`]); over time `to_hz / from_hz` samples per input
//!   sample. Rubato only needs whole FFT sub-chunks, so a chunk can produce 0 samples.
//! - Latency: [`StreamingResampler::latency_samples`] in *output* samples (rubato's
//!   `output_delay`), 0 for the pass-through. An input impulse at input time `t` (seconds)
//!   appears at output index `t · to_hz + latency_samples`.
//! - Allocation: only in `new`; `process_chunk` does not allocate.
//! - Quality: FFT resampler with rubato's default Blackman-Harris window; sinc resampler with a
//!   64-tap Blackman-Harris² filter and an automatic cut-off.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters, WindowFunction,
};

/// Rate pairs whose period (`rate / gcd`) is at most this on both sides use the FFT resampler.
const FFT_MAX_PERIOD: u32 = 16;

/// The rubato resampler in use.
enum Inner {
    Fft(Box<Fft<f32>>),
    Sinc(Box<Async<f32>>),
}

/// Calls the same `Resampler` method on whichever resampler is inside.
macro_rules! on_inner {
    ($inner:expr, $r:ident => $body:expr) => {
        match $inner {
            Inner::Fft($r) => $body,
            Inner::Sinc($r) => $body,
        }
    };
}

/// `(input, output)` chunk granularity for a steady output between two rates: the FFT
/// resampler emits whole periods of the rate ratio (3 → 1 for 48 → 16 kHz), so chunks that are
/// whole periods give the same output count every call; the sinc resampler takes any chunk.
pub fn chunk_period(from_hz: u32, to_hz: u32) -> (usize, usize) {
    let g = gcd(from_hz, to_hz).max(1);
    if from_hz / g <= FFT_MAX_PERIOD && to_hz / g <= FFT_MAX_PERIOD {
        ((from_hz / g) as usize, (to_hz / g) as usize)
    } else {
        (1, 1)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

use crate::dsp::{sanitize_sample, DspError};

/// Streaming mono resampler between two integer rates; see the [module docs](self).
pub struct StreamingResampler {
    from_hz: u32,
    to_hz: u32,
    chunk_size: usize,
    /// `None` when the rates are equal (pass-through).
    inner: Option<Inner>,
    /// Sanitised copy of the input chunk.
    input_buffer: Vec<f32>,
}

impl std::fmt::Debug for StreamingResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl StreamingResampler {
    /// Builds a resampler taking `chunk_size` input samples per call.
    ///
    /// # Errors
    /// Rates outside 1 kHz–1 MHz, `chunk_size` 0 or above 2^20, or a rate pair rubato rejects.
    pub fn new(from_hz: u32, to_hz: u32, chunk_size: usize) -> Result<Self, DspError> {
        for rate in [from_hz, to_hz] {
            if !(1000..=1_000_000).contains(&rate) {
                return Err(DspError::invalid(
                    "sample rate",
                    "must be between 1 kHz and 1 MHz",
                ));
            }
        }
        if !(1..=1 << 20).contains(&chunk_size) {
            return Err(DspError::invalid("chunk_size", "must be in 1..=2^20"));
        }
        let unsupported = |_| DspError::invalid("sample rate", "rate pair not supported");
        let inner = if from_hz == to_hz {
            None
        } else if chunk_period(from_hz, to_hz) != (1, 1) {
            let fft = Fft::<f32>::new(
                from_hz as usize,
                to_hz as usize,
                chunk_size,
                1,
                FixedSync::Input,
            )
            .map_err(unsupported)?;
            Some(Inner::Fft(Box::new(fft)))
        } else {
            let parameters = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2);
            let sinc = Async::<f32>::new_sinc(
                f64::from(to_hz) / f64::from(from_hz),
                1.0,
                &parameters,
                chunk_size,
                1,
                FixedAsync::Input,
            )
            .map_err(unsupported)?;
            Some(Inner::Sinc(Box::new(sinc)))
        };
        Ok(Self {
            from_hz,
            to_hz,
            chunk_size,
            inner,
            input_buffer: vec![0.0; chunk_size],
        })
    }

    /// Input rate.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Samples every `process_chunk` call takes.
    pub fn input_chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Most samples one `process_chunk` call can write: size the output buffer with it.
    pub fn output_frames_max(&self) -> usize {
        self.inner.as_ref().map_or(
            self.chunk_size,
            |inner| on_inner!(inner, r => r.output_frames_max()),
        )
    }

    /// Delay in output samples (0 for the pass-through).
    pub fn latency_samples(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| on_inner!(inner, r => r.output_delay()))
    }

    /// Clears the filter state.
    pub fn reset(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            on_inner!(inner, r => r.reset());
        }
    }

    /// Resamples one chunk; returns how many samples were written to the front of `output`.
    ///
    /// # Panics
    /// If `input.len() != input_chunk_size()` or `output.len() < output_frames_max()`.
    pub fn process_chunk(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        assert_eq!(
            input.len(),
            self.chunk_size,
            "resampler input must be one chunk"
        );
        assert!(
            output.len() >= self.output_frames_max(),
            "resampler output buffer too small"
        );
        for (b, &x) in self.input_buffer.iter_mut().zip(input) {
            *b = sanitize_sample(x);
        }
        let Some(inner) = self.inner.as_mut() else {
            output[..self.chunk_size].copy_from_slice(&self.input_buffer);
            return self.chunk_size;
        };
        let frames_out = output.len();
        let (Ok(input_adapter), Ok(mut output_adapter)) = (
            InterleavedSlice::new(&self.input_buffer[..], 1, self.chunk_size),
            InterleavedSlice::new_mut(output, 1, frames_out),
        ) else {
            debug_assert!(false, "buffer sizes are checked above");
            return 0;
        };
        let result =
            on_inner!(inner, r => r.process_into_buffer(&input_adapter, &mut output_adapter, None));
        match result {
            Ok((_, written)) => written,
            Err(_) => {
                debug_assert!(false, "buffer sizes are checked above");
                0
            }
        }
    }

    /// Offline helper through the same code: resamples a whole signal, removes the delay and
    /// returns `round(len · to / from)` samples.
    ///
    /// # Errors
    /// As [`StreamingResampler::new`].
    pub fn resample(signal: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, DspError> {
        let chunk = 1024;
        let mut resampler = Self::new(from_hz, to_hz, chunk)?;
        let delay = resampler.latency_samples();
        let wanted = ((signal.len() as u64 * u64::from(to_hz) + u64::from(from_hz) / 2)
            / u64::from(from_hz)) as usize;
        let mut output = Vec::with_capacity(wanted + delay + 2 * resampler.output_frames_max());
        let mut out_chunk = vec![0.0f32; resampler.output_frames_max()];
        let mut in_chunk = vec![0.0f32; chunk];
        let mut position = 0;
        while output.len() < wanted + delay {
            in_chunk.fill(0.0);
            if position < signal.len() {
                let n = chunk.min(signal.len() - position);
                in_chunk[..n].copy_from_slice(&signal[position..position + n]);
            }
            position += chunk;
            let written = resampler.process_chunk(&in_chunk, &mut out_chunk);
            output.extend_from_slice(&out_chunk[..written]);
            if position
                > signal.len() + 4 * (delay + chunk) * from_hz as usize / to_hz as usize + 8 * chunk
            {
                break; // cannot happen with a working resampler; guards against a stall
            }
        }
        output.drain(..delay.min(output.len()));
        output.resize(wanted, 0.0);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::test_signals::{garbage_inputs, sine};

    fn amplitude_and_phase(x: &[f32], freq_hz: f64, sample_rate_hz: f64) -> (f64, f64) {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (n, &v) in x.iter().enumerate() {
            let p = std::f64::consts::TAU * freq_hz * n as f64 / sample_rate_hz;
            s += f64::from(v) * p.sin();
            c += f64::from(v) * p.cos();
        }
        let scale = 2.0 / x.len() as f64;
        ((s * s + c * c).sqrt() * scale, c.atan2(s))
    }

    fn stream(resampler: &mut StreamingResampler, signal: &[f32]) -> Vec<f32> {
        let chunk = resampler.input_chunk_size();
        let mut out = vec![0.0; resampler.output_frames_max()];
        let mut result = Vec::new();
        for c in signal.chunks_exact(chunk) {
            let n = resampler.process_chunk(c, &mut out);
            result.extend_from_slice(&out[..n]);
        }
        result
    }

    #[test]
    fn round_trip_48k_44k1_48k_keeps_frequency_and_amplitude() {
        let signal = sine(1000.0, 0.5, 48000.0, 48000);
        let mut down = StreamingResampler::new(48000, 44100, 480).unwrap();
        let mut up = StreamingResampler::new(44100, 48000, 441).unwrap();
        let mid = stream(&mut down, &signal);
        let (amp_mid, _) = amplitude_and_phase(&mid[4410..mid.len() - 4410], 1000.0, 44100.0);
        assert!((amp_mid - 0.5).abs() < 1e-3, "44.1 kHz amplitude {amp_mid}");
        let back = stream(&mut up, &mid[..mid.len() / 441 * 441]);
        let steady = &back[4800..back.len() - 4800];
        let (amp, _) = amplitude_and_phase(steady, 1000.0, 48000.0);
        assert!((amp - 0.5).abs() < 1e-3, "48 kHz amplitude {amp}");
        // Frequency: the component at 1 kHz holds all the energy (1.01 kHz holds none).
        let (off, _) = amplitude_and_phase(steady, 1010.0, 48000.0);
        assert!(off < 0.01, "energy off frequency {off}");
    }

    #[test]
    fn reported_delay_matches_measured_delay() {
        for (from, to, chunk) in [
            (48000u32, 44100u32, 480usize),
            (44100, 48000, 441),
            (48000, 16000, 480),
        ] {
            // A smooth, band-limited pulse (Hann-shaped, 64 input samples wide) at input index p.
            let p = 3000usize;
            let mut signal = vec![0.0f32; 12000];
            for i in 0..64 {
                let w = (std::f32::consts::PI * i as f32 / 64.0).sin().powi(2);
                signal[p - 32 + i] = w;
            }
            let mut resampler = StreamingResampler::new(from, to, chunk).unwrap();
            let out = stream(&mut resampler, &signal);
            let peak = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap() as f64;
            // Refine the peak by a parabola.
            let i = peak as usize;
            let (a, b, c) = (out[i - 1] as f64, out[i] as f64, out[i + 1] as f64);
            let peak = peak + 0.5 * (a - c) / (a - 2.0 * b + c);
            let expected =
                p as f64 * f64::from(to) / f64::from(from) + resampler.latency_samples() as f64;
            assert!(
                (peak - expected).abs() < 1.0,
                "{from}->{to}: peak at {peak}, expected {expected} (latency {})",
                resampler.latency_samples()
            );
        }
    }

    #[test]
    fn equal_rates_pass_through_exactly() {
        let mut r = StreamingResampler::new(44100, 44100, 64).unwrap();
        assert_eq!(r.latency_samples(), 0);
        let signal = sine(440.0, 0.3, 44100.0, 640);
        assert_eq!(stream(&mut r, &signal), signal);
        let offline = StreamingResampler::resample(&signal, 44100, 44100).unwrap();
        assert_eq!(offline, signal);
    }

    #[test]
    fn offline_resample_is_delay_compensated() {
        let signal = sine(440.0, 0.5, 48000.0, 24000);
        let out = StreamingResampler::resample(&signal, 48000, 16000).unwrap();
        assert_eq!(out.len(), 8000);
        let reference = sine(440.0, 0.5, 16000.0, 8000);
        let max_error = out[500..7500]
            .iter()
            .zip(&reference[500..7500])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_error < 2e-3, "max error {max_error}");
    }

    #[test]
    fn garbage_in_gives_finite_output() {
        for (name, signal) in garbage_inputs(4800) {
            let out = StreamingResampler::resample(&signal, 48000, 44100).unwrap();
            assert!(out.iter().all(|x| x.is_finite()), "{name}");
        }
        assert!(StreamingResampler::new(0, 48000, 64).is_err());
        assert!(StreamingResampler::new(48000, 44100, 0).is_err());
    }
}
