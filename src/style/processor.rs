//! Continuo Style's [`HopProcessor`]: host-rate hops in and out; analysis and the model at
//! 16 kHz, the synthesiser at the host's rate.
//!
//! Per host hop: mix to mono → resample to 16 kHz → whole 64-sample hops through the
//! [`TimbreVoice`] → each frame rendered at the host rate by the [`HostRenderer`] → the same
//! restyled signal on every output channel. The resampler emits a varying number of samples per
//! call, so a FIFO joins it to the voice, and the output FIFO starts with enough silence
//! ("prime") that it never runs dry. Everything is deterministic, so the latency is a constant:
//!
//! `latency = prime + D·R/250 + d`, rounded to the sample
//!
//! with `D` the voice's delay in frames, `R` the host rate and `d` the down-sampler's delay in
//! host samples, *measured* when the processor is built by sending a band-limited pulse through
//! it (the tests prove the sum against the real voice). A frame of the 16 kHz stream is rendered
//! into exactly the host samples of its own time span ([`super::render::hop_length`]), so the
//! two streams keep time to the sample.
//!
//! When style A fails the renderer asks for the dry input; the output crossfades to the input
//! delayed by the same latency, per channel. Without a model (none found, or loading failed)
//! the processor passes its input through that delay, so the plugin plays dry and a later hot
//! swap to a model keeps the latency the host was told.

use std::collections::VecDeque;

use crate::dsp::resample::{chunk_period, StreamingResampler};
use crate::engine::audio::HopProcessor;
use crate::engine::delay::DelayLine;

use super::features::{F0_MIN_HZ, FRAME_RATE_HZ, HOP_SIZE, SAMPLE_RATE_HZ};
use super::render::{hop_length, max_hop_length, HostRenderer};
use super::voice::{LatencyMode, TimbreVoice};
use super::StyleError;

impl LatencyMode {
    /// Host hop length in milliseconds (the engine's hop term of the latency).
    fn host_hop_ms(self) -> f32 {
        match self {
            Self::LowLatency => 1.0,
            Self::Quality => 4.0,
        }
    }
}

/// Host rate → 16 kHz, with the FIFO that cuts the 16 kHz stream into the voice's hops.
struct DownChain {
    host_hop: usize,
    down: StreamingResampler,
    down_out: Vec<f32>,
    in_16k: VecDeque<f32>,
}

impl DownChain {
    fn new(host_rate: u32, mode: LatencyMode) -> Result<Self, StyleError> {
        // Whole periods of a short rate ratio (48 : 16 kHz = 3 : 1) keep the FFT resampler's
        // output steady; long periods (44.1 kHz) go to the sinc resampler, which takes any hop.
        let (period_host, _) = chunk_period(host_rate, SAMPLE_RATE_HZ);
        let wanted = host_rate as f32 * mode.host_hop_ms() / 1000.0;
        let host_hop = ((wanted / period_host as f32).round() as usize).max(1) * period_host;
        let down = StreamingResampler::new(host_rate, SAMPLE_RATE_HZ, host_hop)?;
        Ok(Self {
            host_hop,
            down_out: vec![0.0; down.output_frames_max()],
            in_16k: VecDeque::with_capacity(down.output_frames_max() + HOP_SIZE),
            down,
        })
    }

    fn reset(&mut self) {
        self.down.reset();
        self.in_16k.clear();
    }

    /// Takes one host hop; afterwards `in_16k` holds the 16 kHz samples not yet consumed.
    fn push(&mut self, input: &[f32]) {
        let written = self.down.process_chunk(input, &mut self.down_out);
        // Within capacity: the caller drains whole hops after every push.
        self.in_16k.extend(&self.down_out[..written]);
    }

    /// The next whole 16 kHz hop, if there is one.
    fn next_hop(&mut self, hop: &mut [f32]) -> bool {
        if self.in_16k.len() < HOP_SIZE {
            return false;
        }
        for (slot, x) in hop.iter_mut().zip(self.in_16k.drain(..HOP_SIZE)) {
            *slot = x;
        }
        true
    }
}

/// The lowest level, relative to its start, of the output FIFO over `seconds` of a constant
/// `input`, run with the FIFO counted instead of filled (each 16 kHz hop adds its host-rate
/// hop, each host hop takes its own). Never above 0: it is measured after every host hop.
fn fifo_low_water(
    host_rate: u32,
    mode: LatencyMode,
    input: f32,
    seconds: usize,
) -> Result<i64, StyleError> {
    let mut chain = DownChain::new(host_rate, mode)?;
    let hop = chain.host_hop;
    let input = vec![input; hop];
    let mut scratch = [0.0; HOP_SIZE];
    let (mut level, mut lowest, mut frame) = (0i64, 0i64, 0u64);
    for _ in 0..(seconds * host_rate as usize).div_ceil(hop) {
        chain.push(&input);
        while chain.next_hop(&mut scratch) {
            level += hop_length(host_rate, frame) as i64;
            frame += 1;
        }
        level -= hop as i64;
        lowest = lowest.min(level);
    }
    Ok(lowest)
}

/// `(prime, latency)` at `host_rate` in `mode` for a voice `delay_frames` frames late; see the
/// [module docs](self).
fn calibrate(
    host_rate: u32,
    mode: LatencyMode,
    delay_frames: usize,
) -> Result<(usize, usize), StyleError> {
    // The prime: how far the output FIFO would fall below its start on two seconds of silence.
    let prime = (-fifo_low_water(host_rate, mode, 0.0, 2)?) as usize;

    // The down-sampler's delay: where a band-limited pulse (3 kHz sinc under a 4 ms Hann
    // window) comes out at 16 kHz, to a fraction of a sample (parabola through the peak).
    let mut chain = DownChain::new(host_rate, mode)?;
    let hop = chain.host_hop;
    let rate = host_rate as f32;
    let centre = (rate * 0.25) as usize;
    let half_width = (rate * 0.002) as usize;
    let pulse = |n: usize| {
        let t = n as f32 - centre as f32;
        if t.abs() >= half_width as f32 {
            return 0.0;
        }
        let x = 2.0 * 3000.0 * t / rate;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f32::consts::PI * x).sin() / (std::f32::consts::PI * x)
        };
        let window = 0.5 + 0.5 * (std::f32::consts::PI * t / half_width as f32).cos();
        sinc * window
    };
    let total = centre + rate as usize / 2;
    let mut input = vec![0.0; hop];
    let mut response = Vec::with_capacity(total);
    for start in (0..total).step_by(hop) {
        for (k, x) in input.iter_mut().enumerate() {
            *x = pulse(start + k);
        }
        chain.push(&input);
        response.extend(chain.in_16k.drain(..));
    }
    let (peak_index, peak) = response
        .iter()
        .enumerate()
        .fold((0, 0.0f32), |best, (i, &y)| {
            if y.abs() > best.1 {
                (i, y.abs())
            } else {
                best
            }
        });
    let to_host = rate / SAMPLE_RATE_HZ as f32;
    if peak < 0.5 || peak_index == 0 || peak_index + 1 >= response.len() {
        return Err(StyleError::Dsp(crate::dsp::DspError::invalid(
            "sample rate",
            "latency calibration failed: the resampler lost the test pulse",
        )));
    }
    let (before, after) = (response[peak_index - 1], response[peak_index + 1]);
    let curvature = before - 2.0 * response[peak_index] + after;
    let offset = if curvature != 0.0 {
        (0.5 * (before - after) / curvature).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let down_delay = (peak_index as f32 + offset) * to_host - centre as f32;
    let voice_delay = delay_frames as f32 * rate / FRAME_RATE_HZ;
    let latency = (prime as f32 + voice_delay + down_delay).round();
    if latency < 0.0 {
        return Err(StyleError::Dsp(crate::dsp::DspError::invalid(
            "sample rate",
            "latency calibration failed: the pulse came out before it went in",
        )));
    }
    Ok((prime, latency as usize))
}

/// A voice with its host-rate renderer and the FIFOs behind them.
struct VoicePath {
    voice: TimbreVoice,
    renderer: HostRenderer,
    hop_16k: Vec<f32>,
    wet_hop: Vec<f32>,
    share_hop: Vec<f32>,
    wet: VecDeque<f32>,
    dry_share: VecDeque<f32>,
    prime: usize,
}

impl VoicePath {
    fn reset(&mut self) {
        self.voice.reset();
        self.renderer.reset();
        self.wet.clear();
        self.wet.extend(std::iter::repeat_n(0.0, self.prime));
        self.dry_share.clear();
        self.dry_share.extend(std::iter::repeat_n(0.0, self.prime));
    }
}

/// The hop processor of Continuo Style; see the [module docs](self).
pub struct StyleProcessor {
    latency: usize,
    chain: DownChain,
    voice: Option<VoicePath>,
    /// The input delayed by `latency`: the whole output without a model, the crossfade
    /// partner when style A fails.
    dry: DelayLine,
    mono: Vec<f32>,
    frame: Vec<f32>,
    /// Without a voice: the f0 floor whose latency this processor has.
    dry_f0_floor_hz: f32,
}

impl StyleProcessor {
    /// A processor at `sample_rate` for `channels` channels playing `voice` (or passing the
    /// input through, delayed by the same latency, when `None`).
    ///
    /// # Errors
    /// A sample rate that is not a whole number of Hz in 8 kHz–384 kHz, or a rate the
    /// resampler cannot convert.
    pub fn new(
        sample_rate: f32,
        channels: usize,
        mode: LatencyMode,
        voice: Option<TimbreVoice>,
    ) -> Result<Self, StyleError> {
        Self::build(sample_rate, channels, mode, voice, F0_MIN_HZ)
    }

    /// A processor passing the input through, delayed by the latency a voice analysing from
    /// `f0_floor_hz` has (so that such a voice can be swapped in later, and the reverse).
    ///
    /// # Errors
    /// As [`StyleProcessor::new`], or a floor the pitch tracker cannot search from.
    pub fn dry(
        sample_rate: f32,
        channels: usize,
        mode: LatencyMode,
        f0_floor_hz: f32,
    ) -> Result<Self, StyleError> {
        Self::build(sample_rate, channels, mode, None, f0_floor_hz)
    }

    fn build(
        sample_rate: f32,
        channels: usize,
        mode: LatencyMode,
        voice: Option<TimbreVoice>,
        dry_f0_floor_hz: f32,
    ) -> Result<Self, StyleError> {
        let host_rate = Self::supported_rate(sample_rate)?;
        let delay_frames = match &voice {
            Some(v) => v.latency_frames(),
            None => mode.voice_latency_frames(dry_f0_floor_hz)?,
        };
        let (prime, latency) = calibrate(host_rate, mode, delay_frames)?;
        let chain = DownChain::new(host_rate, mode)?;
        let hop = chain.host_hop;
        let voice = match voice {
            Some(voice) => {
                let renderer = voice.renderer(host_rate)?;
                let max_hop = max_hop_length(host_rate);
                // The FIFOs never hold more than the prime plus what one host hop renders.
                let capacity = prime + hop + 2 * max_hop;
                let mut path = VoicePath {
                    voice,
                    renderer,
                    hop_16k: vec![0.0; HOP_SIZE],
                    wet_hop: vec![0.0; max_hop],
                    share_hop: vec![0.0; max_hop],
                    wet: VecDeque::with_capacity(capacity),
                    dry_share: VecDeque::with_capacity(capacity),
                    prime,
                };
                path.reset();
                Some(path)
            }
            None => None,
        };
        let channels = channels.max(1);
        Ok(Self {
            latency,
            chain,
            voice,
            dry: DelayLine::new(channels, latency),
            mono: vec![0.0; hop],
            frame: vec![0.0; channels],
            dry_f0_floor_hz,
        })
    }

    /// `sample_rate` as the whole number of Hz the resamplers run at, if Style can run at it.
    ///
    /// # Errors
    /// A rate that is not a whole number of Hz in 8 kHz–384 kHz.
    pub fn supported_rate(sample_rate: f32) -> Result<u32, StyleError> {
        let host_rate = sample_rate.round();
        if !((8_000.0..=384_000.0).contains(&host_rate) && (sample_rate - host_rate).abs() < 1e-3) {
            return Err(StyleError::Dsp(crate::dsp::DspError::invalid(
                "sample rate",
                "must be a whole number of Hz between 8 kHz and 384 kHz",
            )));
        }
        Ok(host_rate as u32)
    }

    /// The f0 floor this processor's latency was computed for: its voice's, or the one it was
    /// built with without a voice.
    pub fn f0_floor_hz(&self) -> f32 {
        self.voice
            .as_ref()
            .map_or(self.dry_f0_floor_hz, |path| path.voice.f0_floor_hz())
    }
}

impl HopProcessor for StyleProcessor {
    fn hop_size(&self) -> usize {
        self.chain.host_hop
    }

    fn latency_samples(&self) -> usize {
        self.latency
    }

    fn process_hop(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        let hop = self.chain.host_hop;
        let Some(path) = self.voice.as_mut() else {
            for n in 0..hop {
                for (slot, channel) in self.frame.iter_mut().zip(input) {
                    *slot = channel[n];
                }
                self.dry.process_frame(&mut self.frame);
                for (channel, &y) in output.iter_mut().zip(&self.frame) {
                    channel[n] = y;
                }
            }
            return;
        };
        let scale = 1.0 / input.len().max(1) as f32;
        for (n, m) in self.mono.iter_mut().enumerate() {
            *m = input.iter().map(|c| c[n]).sum::<f32>() * scale;
        }
        self.chain.push(&self.mono);
        while self.chain.next_hop(&mut path.hop_16k) {
            let frame = path.voice.process_hop(&path.hop_16k);
            let len = path
                .renderer
                .render(frame, &mut path.wet_hop, &mut path.share_hop);
            path.wet.extend(&path.wet_hop[..len]);
            path.dry_share.extend(&path.share_hop[..len]);
        }
        for n in 0..hop {
            let wet = path.wet.pop_front().unwrap_or(0.0);
            let share = path.dry_share.pop_front().unwrap_or(0.0);
            for (slot, channel) in self.frame.iter_mut().zip(input) {
                *slot = channel[n];
            }
            self.dry.process_frame(&mut self.frame);
            for (channel, &dry) in output.iter_mut().zip(&self.frame) {
                channel[n] = if share > 0.0 {
                    wet * (1.0 - share) + dry * share
                } else {
                    wet
                };
            }
        }
    }

    fn reset(&mut self) {
        self.chain.reset();
        self.dry.reset();
        if let Some(path) = self.voice.as_mut() {
            path.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Impulse response of the no-model processor: exactly the latency it reports.
    #[test]
    fn dry_path_delay_equals_the_measured_latency() {
        for rate in [44_100.0, 48_000.0, 96_000.0] {
            for mode in [LatencyMode::LowLatency, LatencyMode::Quality] {
                let mut p = StyleProcessor::new(rate, 1, mode, None).unwrap();
                let hop = p.hop_size();
                let latency = p.latency_samples();
                let mut found = None;
                for h in 0..(latency / hop + 3) {
                    let mut input = vec![vec![0.0; hop]];
                    if h == 0 {
                        input[0][0] = 1.0;
                    }
                    let mut output = vec![vec![0.0; hop]];
                    p.process_hop(&input, &mut output);
                    if let Some(i) = output[0].iter().position(|&y| y == 1.0) {
                        found = Some(h * hop + i);
                    }
                }
                assert_eq!(found, Some(latency), "{rate} {mode:?}");
            }
        }
    }

    #[test]
    fn the_prime_is_what_the_fifo_needs_and_the_latency_covers_the_voice() {
        for rate in [44_100u32, 48_000, 96_000] {
            for mode in [LatencyMode::LowLatency, LatencyMode::Quality] {
                let frames = mode.voice_latency_frames(F0_MIN_HZ).unwrap();
                let (prime, latency) = calibrate(rate, mode, frames).unwrap();
                let voice_host = frames as f32 * rate as f32 / FRAME_RATE_HZ;
                assert!(latency as f32 >= voice_host, "{rate} {mode:?}: {latency}");
                // On another signal and for longer, the primed FIFO reaches empty and no lower:
                // a prime one sample short would run dry.
                let lowest = prime as i64 + fifo_low_water(rate, mode, 0.1, 3).unwrap();
                assert_eq!(lowest, 0, "{rate} {mode:?}: prime {prime}");
            }
        }
    }
}
