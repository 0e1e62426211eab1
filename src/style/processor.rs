//! Continuo Style's [`HopProcessor`]: host-rate hops in and out, the [`TimbreVoice`] at 16 kHz
//! in between.
//!
//! Per host hop: mix to mono → resample to 16 kHz → whole 64-sample hops through the voice →
//! resample back → the same restyled signal on every output channel. Resamplers emit a varying
//! number of samples per call, so FIFOs join the stages and the output FIFO starts with enough
//! silence ("prime") that it never runs dry. Everything is deterministic, so the latency is a
//! constant; it is *measured* when the processor is built, by sending a band-limited pulse
//! through the same chain with the voice replaced by a pure delay of the voice's latency, and the
//! tests prove it against the real voice.
//!
//! Without a model (none found, or loading failed) the processor passes its input through a
//! delay of that same latency, so the plugin plays dry and a later hot swap to a model keeps the
//! latency the host was told.

use std::collections::VecDeque;

use crate::dsp::resample::{chunk_period, StreamingResampler};
use crate::engine::audio::HopProcessor;
use crate::engine::delay::DelayLine;

use super::features::{HOP_SIZE, SAMPLE_RATE_HZ};
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

    /// 16 kHz samples per call of the up-sampler (smaller: less delay, shorter filter).
    fn upsampler_chunk(self) -> usize {
        match self {
            Self::LowLatency => 16,
            Self::Quality => HOP_SIZE,
        }
    }
}

/// Host rate ↔ 16 kHz with FIFOs between the stages; see the [module docs](self).
struct RateChain {
    host_hop: usize,
    down: StreamingResampler,
    up: StreamingResampler,
    down_out: Vec<f32>,
    up_in: Vec<f32>,
    up_out: Vec<f32>,
    hop_in: Vec<f32>,
    hop_out: Vec<f32>,
    in_16k: VecDeque<f32>,
    out_16k: VecDeque<f32>,
    out: VecDeque<f32>,
    prime: usize,
    /// Hops that found the output FIFO short (never, if the prime is right).
    underflows: u64,
}

impl RateChain {
    fn new(host_rate: u32, mode: LatencyMode, prime: usize) -> Result<Self, StyleError> {
        // Whole periods of a short rate ratio (48 : 16 kHz = 3 : 1) keep the FFT resampler's
        // output steady; long periods (44.1 kHz) go to the sinc resampler, which takes any hop.
        let (period_host, period_16k) = chunk_period(host_rate, SAMPLE_RATE_HZ);
        let wanted = host_rate as f32 * mode.host_hop_ms() / 1000.0;
        let host_hop = ((wanted / period_host as f32).round() as usize).max(1) * period_host;
        let up_chunk = mode.upsampler_chunk().div_ceil(period_16k) * period_16k;
        let down = StreamingResampler::new(host_rate, SAMPLE_RATE_HZ, host_hop)?;
        let up = StreamingResampler::new(SAMPLE_RATE_HZ, host_rate, up_chunk)?;
        let mut chain = Self {
            host_hop,
            down_out: vec![0.0; down.output_frames_max()],
            up_out: vec![0.0; up.output_frames_max()],
            up_in: vec![0.0; up_chunk],
            down,
            up,
            hop_in: vec![0.0; HOP_SIZE],
            hop_out: vec![0.0; HOP_SIZE],
            in_16k: VecDeque::new(),
            out_16k: VecDeque::new(),
            out: VecDeque::new(),
            prime,
            underflows: 0,
        };
        chain.reset();
        Ok(chain)
    }

    fn reset(&mut self) {
        self.down.reset();
        self.up.reset();
        self.in_16k.clear();
        self.out_16k.clear();
        self.out.clear();
        self.out.extend(std::iter::repeat_n(0.0, self.prime));
    }

    /// One host hop of `input` → `output`, with `voice` turning 16 kHz hops into 16 kHz hops.
    /// Returns how many output samples the FIFO was short by (0 when primed right).
    fn process(
        &mut self,
        input: &[f32],
        output: &mut [f32],
        mut voice: impl FnMut(&[f32], &mut [f32]),
    ) -> usize {
        let written = self.down.process_chunk(input, &mut self.down_out);
        self.in_16k.extend(&self.down_out[..written]);
        while self.in_16k.len() >= HOP_SIZE {
            for (slot, x) in self.hop_in.iter_mut().zip(self.in_16k.drain(..HOP_SIZE)) {
                *slot = x;
            }
            voice(&self.hop_in, &mut self.hop_out);
            self.out_16k.extend(&self.hop_out);
        }
        let up_chunk = self.up_in.len();
        while self.out_16k.len() >= up_chunk {
            for (slot, x) in self.up_in.iter_mut().zip(self.out_16k.drain(..up_chunk)) {
                *slot = x;
            }
            let written = self.up.process_chunk(&self.up_in, &mut self.up_out);
            self.out.extend(&self.up_out[..written]);
        }
        let available = self.out.len().min(output.len());
        for (slot, x) in output.iter_mut().zip(self.out.drain(..available)) {
            *slot = x;
        }
        output[available..].fill(0.0);
        let short = output.len() - available;
        if short > 0 {
            self.underflows += 1;
        }
        short
    }
}

/// A 16 kHz pure delay standing in for the voice during calibration.
fn delay_voice(latency: usize) -> impl FnMut(&[f32], &mut [f32]) {
    let mut line: VecDeque<f32> = std::iter::repeat_n(0.0, latency).collect();
    move |input, output| {
        line.extend(input);
        for (slot, x) in output.iter_mut().zip(line.drain(..input.len())) {
            *slot = x;
        }
    }
}

/// `(prime, latency)` of the chain at `host_rate` in `mode` with a voice of `voice_latency`
/// samples at 16 kHz; see the [module docs](self).
fn calibrate(
    host_rate: u32,
    mode: LatencyMode,
    voice_latency: usize,
) -> Result<(usize, usize), StyleError> {
    // The prime: run a generously primed chain for two seconds and see how close to empty its
    // output FIFO came; the prime is what it actually needed.
    let generous = 2 * host_rate as usize;
    let mut chain = RateChain::new(host_rate, mode, generous)?;
    let hop = chain.host_hop;
    let (silence, mut out) = (vec![0.0; hop], vec![0.0; hop]);
    let mut lowest = generous;
    for _ in 0..(2 * host_rate as usize).div_ceil(hop) {
        chain.process(&silence, &mut out, |i, o| o.copy_from_slice(i));
        // What was left after this hop's output, i.e. the margin above running dry.
        lowest = lowest.min(chain.out.len());
    }
    let prime = generous - lowest;

    // The latency: where a band-limited pulse (3 kHz sinc under a 4 ms Hann window) comes out.
    let mut chain = RateChain::new(host_rate, mode, prime)?;
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
    let total = centre + rate as usize;
    let mut voice = delay_voice(voice_latency);
    let (mut input, mut response) = (vec![0.0; hop], Vec::with_capacity(total + hop));
    for start in (0..total).step_by(hop) {
        for (k, x) in input.iter_mut().enumerate() {
            *x = pulse(start + k);
        }
        chain.process(&input, &mut out, &mut voice);
        response.extend_from_slice(&out);
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
    if peak < 0.5 || peak_index < centre {
        return Err(StyleError::Dsp(crate::dsp::DspError::invalid(
            "sample rate",
            "latency calibration failed: the resampling chain lost the test pulse",
        )));
    }
    Ok((prime, peak_index - centre))
}

/// The hop processor of Continuo Style; see the [module docs](self).
pub struct StyleProcessor {
    latency: usize,
    chain: RateChain,
    voice: Option<TimbreVoice>,
    /// The no-model path: input delayed by `latency`.
    dry: DelayLine,
    mono: Vec<f32>,
    restyled: Vec<f32>,
    frame: Vec<f32>,
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
        let host_rate = Self::supported_rate(sample_rate)?;
        let voice_latency = match &voice {
            Some(v) => v.latency_samples(),
            None => mode.voice_latency_16k()?,
        };
        let (prime, latency) = calibrate(host_rate, mode, voice_latency)?;
        let chain = RateChain::new(host_rate, mode, prime)?;
        let hop = chain.host_hop;
        let channels = channels.max(1);
        Ok(Self {
            latency,
            chain,
            voice,
            dry: DelayLine::new(channels, latency),
            mono: vec![0.0; hop],
            restyled: vec![0.0; hop],
            frame: vec![0.0; channels],
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

    /// `(hop, latency)` a processor in `mode` at `sample_rate` will have, without a model (the
    /// plugin uses it to tell the host the latency of the other mode before switching).
    ///
    /// # Errors
    /// As [`StyleProcessor::new`].
    pub fn hop_and_latency(
        sample_rate: f32,
        mode: LatencyMode,
    ) -> Result<(usize, usize), StyleError> {
        let p = Self::new(sample_rate, 1, mode, None)?;
        Ok((p.hop_size(), p.latency_samples()))
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
        let Some(voice) = self.voice.as_mut() else {
            for n in 0..self.chain.host_hop {
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
        self.chain.process(&self.mono, &mut self.restyled, |i, o| {
            voice.process_hop(i, o);
        });
        for channel in output.iter_mut() {
            channel.copy_from_slice(&self.restyled);
        }
    }

    fn reset(&mut self) {
        self.chain.reset();
        self.dry.reset();
        if let Some(voice) = self.voice.as_mut() {
            voice.reset();
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
    fn chain_latency_is_measured_and_the_fifo_never_runs_dry() {
        for rate in [44_100u32, 48_000, 96_000] {
            for mode in [LatencyMode::LowLatency, LatencyMode::Quality] {
                let voice_latency = mode.voice_latency_16k().unwrap();
                let (prime, latency) = calibrate(rate, mode, voice_latency).unwrap();
                // At least the voice's own delay, converted to the host rate.
                let voice_host = voice_latency as f32 * rate as f32 / SAMPLE_RATE_HZ as f32;
                assert!(latency as f32 >= voice_host, "{rate} {mode:?}: {latency}");
                let mut chain = RateChain::new(rate, mode, prime).unwrap();
                let hop = chain.host_hop;
                let (input, mut out) = (vec![0.1; hop], vec![0.0; hop]);
                for _ in 0..(3 * rate as usize / hop) {
                    chain.process(&input, &mut out, |i, o| o.copy_from_slice(i));
                }
                assert_eq!(chain.underflows, 0, "{rate} {mode:?}");
            }
        }
    }
}
