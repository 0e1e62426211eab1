//! The voice's control frames → audio at the host's own rate.
//!
//! Analysis and the model run at 16 kHz, 250 frames/s ([`super::voice`]); the harmonic-plus-noise
//! synthesiser runs here at the host rate, so a model trained to fill 24 kHz sounds up to 24 kHz
//! and no output resampler (or its latency) sits behind it. Frame `j` is rendered into host
//! samples `⌊j·R/250⌋ .. ⌊(j+1)·R/250⌋` — 192 samples at 48 kHz, 176 or 177 at 44.1 kHz — so the
//! host-rate stream keeps exact time with the 16 kHz one (the synth interpolates the controls
//! per host sample over whatever hop it is given).
//!
//! After the synth, the loudness follower keeps the restyled line's dynamics on the input's: the
//! model is trained to play at the loudness it is given, but on another instrument's phrasing
//! it drifts (typically 0.5–3 dB quiet). The output is metered with the same A-weighted meter
//! as the input and a slow gain (100 ms, ±12 dB, updated on voiced frames only) pulls it onto
//! the input loudness.

use std::collections::VecDeque;

use crate::dsp::analysis::AnalysisConfig;
use crate::dsp::loudness::{LoudnessConfig, LoudnessMeter};
use crate::dsp::synth::{HarmonicNoiseSynth, SynthConfig};

use super::features::FRAME_RATE_HZ;
use super::model::SynthBand;
use super::voice::VoiceFrame;
use super::StyleError;

/// Time constant of the loudness follower.
const FOLLOW_TIME_MS: f32 = 100.0;
/// Most the loudness follower corrects, dB.
const FOLLOW_MAX_DB: f32 = 12.0;
/// Loudest sample the renderer lets out (a model gone wild must not blow up the host's mix).
const OUTPUT_LIMIT: f32 = 4.0;

/// Host samples of frame `frame`'s hop at `rate` Hz (see the [module docs](self)).
pub fn hop_length(rate: u32, frame: u64) -> usize {
    let frames_per_second = FRAME_RATE_HZ as u64;
    let end = (frame + 1) * u64::from(rate) / frames_per_second;
    let start = frame * u64::from(rate) / frames_per_second;
    (end - start) as usize
}

/// The longest hop at `rate` Hz.
pub fn max_hop_length(rate: u32) -> usize {
    (rate as usize).div_ceil(FRAME_RATE_HZ as usize)
}

/// Pulls the synth output's loudness onto the input's (see the [module docs](self)).
struct LoudnessFollower {
    meter: LoudnessMeter,
    /// Rendered samples not metered yet (the meter takes fixed hops, the synth varying ones).
    unmetered: VecDeque<f32>,
    meter_hop: Vec<f32>,
    /// Input loudness of the frames whose output the meter has not reached yet (`None` for
    /// frames that must not steer: unvoiced or quiet).
    pending: VecDeque<Option<f32>>,
    /// Frames from a frame's synthesis to the meter reading centred on it.
    lag: usize,
    /// The latest meter reading, dB.
    measured_db: f32,
    gain_db: f32,
    /// Linear gain at the end of the previous hop (ramped from, so it never steps).
    last_gain: f32,
    coefficient: f32,
}

impl LoudnessFollower {
    fn new(rate: u32, analysis: &AnalysisConfig) -> Result<Self, StyleError> {
        let hop = (rate as usize / FRAME_RATE_HZ as usize).max(1);
        let mut config = LoudnessConfig::new(rate as f32, hop);
        if let Some(window_16k) = analysis.loudness_window_size {
            // The same window in time as the analysis meter's (which runs at 16 kHz).
            let window = (window_16k as f32 * rate as f32 / 16_000.0).round() as usize;
            config.window_size = window.next_power_of_two().max(hop.next_power_of_two());
        }
        let meter = LoudnessMeter::new(config)?;
        let lag = (meter.latency_samples() as f32 / hop as f32).round() as usize;
        Ok(Self {
            meter,
            unmetered: VecDeque::with_capacity(hop + max_hop_length(rate)),
            meter_hop: vec![0.0; hop],
            pending: VecDeque::with_capacity(lag + 2),
            lag,
            measured_db: crate::dsp::DB_FLOOR,
            gain_db: 0.0,
            last_gain: 1.0,
            coefficient: 1.0 - (-1000.0 / (FOLLOW_TIME_MS * FRAME_RATE_HZ)).exp(),
        })
    }

    fn reset(&mut self) {
        self.meter.reset();
        self.unmetered.clear();
        self.pending.clear();
        self.measured_db = crate::dsp::DB_FLOOR;
        self.gain_db = 0.0;
        self.last_gain = 1.0;
    }

    /// Meters the synth's `hop` (input loudness `target`), updates the gain and applies it to
    /// `hop`, ramped from the previous hop's gain.
    fn process(&mut self, target: Option<f32>, hop: &mut [f32]) {
        // Within capacity (one meter hop + one synth hop): no allocation.
        self.unmetered.extend(hop.iter());
        let meter_hop = self.meter_hop.len();
        while self.unmetered.len() >= meter_hop {
            for (slot, x) in self
                .meter_hop
                .iter_mut()
                .zip(self.unmetered.drain(..meter_hop))
            {
                *slot = x;
            }
            self.measured_db = self.meter.process_hop(&self.meter_hop).loudness_db;
        }
        self.pending.push_back(target);
        if self.pending.len() > self.lag {
            if let Some(Some(target)) = self.pending.pop_front() {
                let wanted = (target - self.measured_db).clamp(-FOLLOW_MAX_DB, FOLLOW_MAX_DB);
                self.gain_db += self.coefficient * (wanted - self.gain_db);
            }
        }
        let gain = 10f32.powf(self.gain_db / 20.0);
        let step = (gain - self.last_gain) / hop.len() as f32;
        for (n, y) in hop.iter_mut().enumerate() {
            *y *= self.last_gain + step * (n + 1) as f32;
        }
        self.last_gain = gain;
    }
}

/// Renders the voice's frames at the host rate; see the [module docs](self).
pub struct HostRenderer {
    rate: u32,
    synth: HarmonicNoiseSynth,
    follower: LoudnessFollower,
    /// Frames rendered since the last reset: the clock that sets each hop's length.
    frame: u64,
    /// Share of the dry input at the end of the previous hop (ramped, 0 or 1).
    dry_share: f32,
}

impl HostRenderer {
    /// A renderer at `rate` Hz for a model with `harmonics`, `noise_bands` over `band`, whose
    /// input loudness is measured with `analysis`.
    ///
    /// # Errors
    /// A rate the synthesiser or the meter cannot run at.
    pub fn new(
        rate: u32,
        harmonics: usize,
        noise_bands: usize,
        band: SynthBand,
        analysis: &AnalysisConfig,
    ) -> Result<Self, StyleError> {
        let synth = HarmonicNoiseSynth::new(SynthConfig {
            noise_band_spacing: band.spacing,
            max_hz: band.max_hz,
            ..SynthConfig::new(rate as f32, max_hop_length(rate), harmonics, noise_bands)
        })?;
        Ok(Self {
            rate,
            synth,
            follower: LoudnessFollower::new(rate, analysis)?,
            frame: 0,
            dry_share: 0.0,
        })
    }

    /// Back to time zero.
    pub fn reset(&mut self) {
        self.synth.reset();
        self.follower.reset();
        self.frame = 0;
        self.dry_share = 0.0;
    }

    /// Renders the hop of the voice's next frame (`None`: the voice is still warming up, the hop
    /// is silent) into `wet`, and the share of the dry input the output should have at each of
    /// its samples into `dry_share` (ramped over the hop when the voice switches to or from the
    /// dry input). Returns the hop's length; both slices must hold [`max_hop_length`] samples.
    pub fn render(
        &mut self,
        frame: Option<VoiceFrame<'_>>,
        wet: &mut [f32],
        dry_share: &mut [f32],
    ) -> usize {
        let len = hop_length(self.rate, self.frame);
        self.frame += 1;
        let (wet, share) = (&mut wet[..len], &mut dry_share[..len]);
        let Some(frame) = frame else {
            wet.fill(0.0);
            share.fill(self.dry_share);
            return len;
        };
        self.synth.process_frame(&frame.controls, wet);
        self.follower.process(frame.steering_db, wet);
        for y in wet.iter_mut() {
            *y = if y.is_finite() {
                y.clamp(-OUTPUT_LIMIT, OUTPUT_LIMIT)
            } else {
                0.0
            };
        }
        let target = if frame.dry { 1.0 } else { 0.0 };
        let step = (target - self.dry_share) / len as f32;
        for (n, s) in share.iter_mut().enumerate() {
            *s = self.dry_share + step * (n + 1) as f32;
        }
        self.dry_share = target;
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_keep_exact_time_with_the_frames() {
        for rate in [22_050u32, 44_100, 48_000, 88_200, 96_000] {
            let total: usize = (0..250).map(|j| hop_length(rate, j)).sum();
            assert_eq!(total, rate as usize, "{rate}: one second of frames");
            assert!((0..1000).all(|j| hop_length(rate, j) <= max_hop_length(rate)));
        }
        assert_eq!(hop_length(48_000, 7), 192);
        let lengths: Vec<usize> = (0..5).map(|j| hop_length(44_100, j)).collect();
        assert_eq!(lengths, [176, 176, 177, 176, 177]);
    }
}
