//! The 16 kHz heart of Continuo Style: one hop of input in, one frame of synthesiser controls
//! out (rendered at the host's rate by [`super::render::HostRenderer`]).
//!
//! ```text
//! input gain ─► pitch tracker ─┐ (frames aligned to the same centre)
//!            └► loudness meter ┴► Auto Level ─► FeatureNormalizer ─► pitch shift ─► model A (and B)
//!   ─► morph A↔B ─► balance, brightness, gate ─► VoiceFrame
//! ```
//! The analysis is the trainer's (`super::features`), run hop by hop. Each tracker reports its
//! frame `latency` samples late; like the offline analysis, its input is delayed by a pad so
//! that `latency + pad` is a whole number of hops, and the earlier tracker's frames wait for the
//! later one's. A frame describing input sample `i·64` is ready after hop `i + D − 1` (`D` the
//! larger tracker delay in hops); the synth reaches it at the end of the next hop. So the voice's
//! latency is exactly `D` frames (`D · 4 ms`): 192 samples at 16 kHz (12 ms) with the training
//! analysis ([`LatencyMode::Quality`]) of a model trained down to 100 Hz, 128 (8 ms) with the
//! shorter [`LatencyMode::LowLatency`] analysis. A model trained lower (a cello, `features.f0_min_hz`)
//! needs a longer pitch frame in quality mode, hence a larger `D`: each model's analysis is its
//! own.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::dsp::analysis::{AnalysisConfig, FrameFeatures};
use crate::dsp::loudness::{LoudnessConfig, LoudnessFrame, LoudnessMeter};
use crate::dsp::pitch::{PitchConfig, PitchFrame, PitchTracker};
use crate::dsp::synth::FrameControls;

use super::controls::{SettingsSmoother, SharedStyleSettings, StyleSettings};
use super::decoder::{DecoderState, ModelCalls, StyleDecoder, VoiceModels};
use super::features::{
    counts_for_level, timbre_analysis_config, FeatureNormalizer, LevelMatcher, FRAME_RATE_HZ,
    HOP_SIZE, SAMPLE_RATE_HZ,
};
use super::monitor::HeardFrame;
use super::render::HostRenderer;
use super::{StyleError, StyleStatus};

/// Lowest f0 tracked in low-latency mode (or the model's own floor, if higher): the tracker's
/// frame (two periods) shrinks from 20 ms to 10.5 ms; 190 Hz still covers a violin's open G
/// (196 Hz) and every flute note, not a cello's lowest octave.
pub const LOW_LATENCY_F0_MIN_HZ: f32 = 190.0;
/// Loudness window in low-latency mode (8 ms instead of 16 ms).
pub const LOW_LATENCY_LOUDNESS_WINDOW: usize = 128;
/// Gate thresholds at or below this turn the gate off.
pub const GATE_OFF_DB: f32 = -100.0;
/// Frames the gate stays open after the input stops being voiced and loud (20 ms), so brief
/// tracker dropouts inside a note do not chop it.
const GATE_HOLD_FRAMES: u32 = 5;
/// How fast the gate opens and closes per frame (≈ 8 ms time constant).
const GATE_COEFFICIENT: f32 = 0.4;

/// How far Auto Level's offset glides towards its target per frame (≈ 20 ms, like the other
/// settings), so switching it on or off mid-note does not jump the model's loudness.
const LEVEL_OFFSET_GLIDE: f32 = 0.2;

/// Analysis look-ahead versus fidelity to the training features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyMode {
    /// The shorter analysis (f0 ≥ 190 Hz, 8 ms loudness window): 4 ms less look-ahead (more
    /// for models trained below 100 Hz).
    LowLatency,
    /// Exactly the analysis the model was trained with (f0 down to its `features.f0_min_hz`,
    /// 16 ms loudness window).
    #[default]
    Quality,
}

impl LatencyMode {
    /// The analysis settings of this mode for models trained down to `f0_floor_hz`.
    pub fn analysis_config(self, f0_floor_hz: f32) -> AnalysisConfig {
        let training = timbre_analysis_config(f0_floor_hz);
        match self {
            Self::Quality => training,
            Self::LowLatency => AnalysisConfig {
                min_f0_hz: LOW_LATENCY_F0_MIN_HZ.max(f0_floor_hz),
                loudness_window_size: Some(LOW_LATENCY_LOUDNESS_WINDOW),
                ..training
            },
        }
    }

    /// The voice's latency in frames in this mode for models trained down to `f0_floor_hz`,
    /// `D` (see the [module docs](self)).
    ///
    /// # Errors
    /// A floor the pitch tracker cannot search from (models are checked at load, see
    /// [`super::features::is_valid_f0_floor`]).
    pub fn voice_latency_frames(self, f0_floor_hz: f32) -> Result<usize, StyleError> {
        Ok(Analyzer::new(self.analysis_config(f0_floor_hz))?.delay_hops)
    }
}

/// Pitch and loudness trackers run hop by hop with their frames aligned.
struct Analyzer {
    pitch: PitchTracker,
    loudness: LoudnessMeter,
    pitch_pad: PadDelay,
    loudness_pad: PadDelay,
    /// Frames of the faster tracker waiting for the slower one.
    pitch_queue: VecDeque<PitchFrame>,
    loudness_queue: VecDeque<LoudnessFrame>,
    pitch_wait: usize,
    loudness_wait: usize,
    /// `D`: hops from a frame's centre sample to the hop after which it is ready, plus one.
    delay_hops: usize,
    /// Hops left before the first real frame (frame 0) is ready.
    warmup: usize,
    padded: Vec<f32>,
}

impl Analyzer {
    fn new(config: AnalysisConfig) -> Result<Self, StyleError> {
        let rate = SAMPLE_RATE_HZ as f32;
        let pitch = PitchTracker::new(PitchConfig {
            min_f0_hz: config.min_f0_hz,
            max_f0_hz: config.max_f0_hz,
            threshold: config.pitch_threshold,
            ..PitchConfig::new(rate, HOP_SIZE)
        })?;
        let mut loudness_config = LoudnessConfig::new(rate, HOP_SIZE);
        if let Some(window) = config.loudness_window_size {
            loudness_config.window_size = window;
        }
        let loudness = LoudnessMeter::new(loudness_config)?;
        // The same padding rule as the offline analysis (`dsp::run_centered`).
        let pad_for = |latency: usize| {
            let pad = (HOP_SIZE - latency % HOP_SIZE) % HOP_SIZE;
            if latency + pad == 0 {
                HOP_SIZE
            } else {
                pad
            }
        };
        let (pitch_pad, loudness_pad) = (
            pad_for(pitch.latency_samples()),
            pad_for(loudness.latency_samples()),
        );
        let pitch_delay = (pitch.latency_samples() + pitch_pad) / HOP_SIZE;
        let loudness_delay = (loudness.latency_samples() + loudness_pad) / HOP_SIZE;
        let delay_hops = pitch_delay.max(loudness_delay);
        let mut analyzer = Self {
            pitch,
            loudness,
            pitch_pad: PadDelay::new(pitch_pad),
            loudness_pad: PadDelay::new(loudness_pad),
            pitch_queue: VecDeque::with_capacity(delay_hops + 1),
            loudness_queue: VecDeque::with_capacity(delay_hops + 1),
            pitch_wait: delay_hops - pitch_delay,
            loudness_wait: delay_hops - loudness_delay,
            delay_hops,
            warmup: 0,
            padded: vec![0.0; HOP_SIZE],
        };
        analyzer.reset();
        Ok(analyzer)
    }

    fn reset(&mut self) {
        self.pitch.reset();
        self.loudness.reset();
        self.pitch_pad.reset();
        self.loudness_pad.reset();
        let silent_pitch = PitchFrame {
            f0_hz: self.pitch.config().min_f0_hz,
            voicing: 0.0,
            aperiodicity: 1.0,
        };
        let silent_loudness = LoudnessFrame {
            loudness_db: crate::dsp::DB_FLOOR,
            rms_db: crate::dsp::DB_FLOOR,
        };
        self.pitch_queue.clear();
        self.pitch_queue
            .extend(std::iter::repeat_n(silent_pitch, self.pitch_wait));
        self.loudness_queue.clear();
        self.loudness_queue
            .extend(std::iter::repeat_n(silent_loudness, self.loudness_wait));
        self.warmup = self.delay_hops - 1;
    }

    /// Pushes one hop; returns the aligned frame `D − 1` hops back, `None` while no frame of
    /// the stream is complete yet (the first `D − 1` hops after `reset`).
    fn process_hop(&mut self, input: &[f32]) -> Option<FrameFeatures> {
        self.pitch_pad.process(input, &mut self.padded);
        self.pitch_queue
            .push_back(self.pitch.process_hop(&self.padded));
        self.loudness_pad.process(input, &mut self.padded);
        self.loudness_queue
            .push_back(self.loudness.process_hop(&self.padded));
        let (p, l) = (
            self.pitch_queue.pop_front().unwrap_or(PitchFrame {
                f0_hz: 0.0,
                voicing: 0.0,
                aperiodicity: 1.0,
            }),
            self.loudness_queue.pop_front().unwrap_or(LoudnessFrame {
                loudness_db: crate::dsp::DB_FLOOR,
                rms_db: crate::dsp::DB_FLOOR,
            }),
        );
        if self.warmup > 0 {
            self.warmup -= 1;
            return None;
        }
        Some(FrameFeatures {
            time_s: 0.0,
            f0_hz: p.f0_hz,
            voicing: p.voicing,
            loudness_db: l.loudness_db,
            rms_db: l.rms_db,
        })
    }
}

/// Delays a hop-sized stream by `pad < hop` samples.
struct PadDelay {
    tail: Vec<f32>,
}

impl PadDelay {
    fn new(pad: usize) -> Self {
        Self {
            tail: vec![0.0; pad],
        }
    }

    fn reset(&mut self) {
        self.tail.fill(0.0);
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) {
        let pad = self.tail.len().min(input.len());
        let keep = input.len() - pad;
        output[..pad].copy_from_slice(&self.tail[..pad]);
        output[pad..].copy_from_slice(&input[..keep]);
        self.tail[..pad].copy_from_slice(&input[keep..]);
    }
}

/// The lowest f0 the models were trained with: the floor their analysis wants.
fn models_f0_floor_hz(models: &VoiceModels) -> f32 {
    let a = models.a.feature_config().f0_min_hz;
    models
        .b
        .as_ref()
        .map_or(a, |b| a.min(b.feature_config().f0_min_hz))
}

/// What one hop of a voice gives the renderer.
#[derive(Debug, Clone, Copy)]
pub struct VoiceFrame<'a> {
    /// The synthesiser controls (f0 already shifted; balance, brightness and gate applied).
    pub controls: FrameControls<'a>,
    /// Input loudness the output should follow (`None`: unvoiced or quiet, do not steer).
    pub steering_db: Option<f32>,
    /// Style A failed: the controls are silent and the output should play the dry input.
    pub dry: bool,
}

/// One monophonic restyling voice at 16 kHz; see the [module docs](self).
pub struct TimbreVoice {
    analyzer: Analyzer,
    analysis: AnalysisConfig,
    mode: LatencyMode,
    /// The f0 floor the analysis was built for (see [`TimbreVoice::set_f0_floor`]).
    f0_floor_hz: f32,
    normalizer: FeatureNormalizer,
    /// Auto Level, towards style A's training level.
    level: LevelMatcher,
    /// The dB Auto Level adds now (glides to the matcher's offset, or to 0 when off).
    level_offset_db: f32,
    models: VoiceModels,
    settings: Arc<SharedStyleSettings>,
    smoother: SettingsSmoother,
    decoder: StyleDecoder,
    state: DecoderState,
    gate_gain: f32,
    gate_hold: u32,
    scaled: Vec<f32>,
    f0_hz: f32,
    /// Where the editor reads what the model hears.
    status: Arc<StyleStatus>,
    /// Why the chosen style B was refused at load (see [`super::load_voice`]).
    pub(super) style_b_refused: Option<StyleError>,
}

impl TimbreVoice {
    /// A voice for `models` in `mode`, reading `settings` every frame and counting model
    /// failures in `status`. It tracks f0 down to the models' own floor
    /// ([`models_f0_floor_hz`](Self::models_f0_floor_hz)) unless
    /// [`set_f0_floor`](Self::set_f0_floor) says otherwise.
    ///
    /// # Errors
    /// The analysis cannot be built (the models' floors were checked at load, so only on a bug).
    pub fn new(
        models: VoiceModels,
        mode: LatencyMode,
        settings: Arc<SharedStyleSettings>,
        status: Arc<StyleStatus>,
    ) -> Result<Self, StyleError> {
        let f0_floor_hz = models_f0_floor_hz(&models);
        let analysis = mode.analysis_config(f0_floor_hz);
        let analyzer = Analyzer::new(analysis)?;
        Ok(Self {
            analyzer,
            analysis,
            mode,
            f0_floor_hz,
            normalizer: FeatureNormalizer::new(models.a.feature_config().clone()),
            level: LevelMatcher::new(models.a.feature_config().loudness_reference_db),
            level_offset_db: 0.0,
            decoder: StyleDecoder::new(
                &models,
                status.clone(),
                "style A failed: the hop played the dry input",
            ),
            state: DecoderState::new(&models),
            models,
            settings,
            smoother: SettingsSmoother::new(20.0, FRAME_RATE_HZ),
            gate_gain: 0.0,
            gate_hold: 0,
            scaled: vec![0.0; HOP_SIZE],
            f0_hz: 0.0,
            status,
            style_b_refused: None,
        })
    }

    /// A renderer for this voice's controls at `rate` Hz (style A's widths and band).
    ///
    /// # Errors
    /// A rate the synthesiser cannot run at.
    pub fn renderer(&self, rate: u32) -> Result<HostRenderer, StyleError> {
        let a = &self.models.a;
        HostRenderer::new(
            rate,
            a.harmonics(),
            a.noise_bands(),
            a.band(),
            &self.analysis,
        )
    }

    /// The lowest f0 styles A and B were trained with (`features.f0_min_hz`): the floor their
    /// analysis wants.
    pub fn models_f0_floor_hz(&self) -> f32 {
        models_f0_floor_hz(&self.models)
    }

    /// The f0 floor this voice's analysis was built for.
    pub fn f0_floor_hz(&self) -> f32 {
        self.f0_floor_hz
    }

    /// Analyses from `f0_floor_hz` instead of the models' own floor: a running plugin keeps
    /// the analysis (hence the latency) it reported to the host until the host restarts it, so
    /// a model trained lower is tracked from the running floor meanwhile. Call before
    /// [`renderer`](Self::renderer).
    ///
    /// # Errors
    /// A floor the pitch tracker cannot search from.
    pub fn set_f0_floor(&mut self, f0_floor_hz: f32) -> Result<(), StyleError> {
        let analysis = self.mode.analysis_config(f0_floor_hz);
        self.analyzer = Analyzer::new(analysis)?;
        self.analysis = analysis;
        self.f0_floor_hz = f0_floor_hz;
        Ok(())
    }

    /// Why the chosen style B was refused at load (the voice plays A alone), handed over once.
    pub fn take_style_b_refusal(&mut self) -> Option<StyleError> {
        self.style_b_refused.take()
    }

    /// `D`: frames from an input sample to the end of the hop that renders it (see the
    /// [module docs](self)).
    pub fn latency_frames(&self) -> usize {
        self.analyzer.delay_hops
    }

    /// Names of styles A and B.
    pub fn style_names(&self) -> (String, Option<String>) {
        (
            self.models.a.name().to_owned(),
            self.models.b.as_ref().map(|b| b.name().to_owned()),
        )
    }

    /// Back to time zero.
    pub fn reset(&mut self) {
        self.analyzer.reset();
        self.normalizer.reset();
        self.level.reset();
        self.level_offset_db = 0.0;
        self.state.reset();
        self.smoother.reset();
        self.gate_gain = 0.0;
        self.gate_hold = 0;
    }

    /// Analyses one hop (`HOP_SIZE` samples at 16 kHz) of `input` and runs the models: the
    /// controls of the frame now ready, or `None` while the analysis is still warming up (the
    /// first `D − 1` hops after a reset).
    ///
    /// A hop whose model call fails gives what is still valid, never silence: style A alone
    /// when B failed, silent controls marked `dry` when A failed (the renderer's caller
    /// crossfades to the dry input). Failures are counted in the [`StyleStatus`].
    pub fn process_hop(&mut self, input: &[f32]) -> Option<VoiceFrame<'_>> {
        let settings = self.smoother.next(self.settings.load());
        let gain = 10f32.powf(settings.input_gain_db / 20.0);
        for (s, &x) in self.scaled.iter_mut().zip(input) {
            *s = x * gain;
        }
        let frame = self.analyzer.process_hop(&self.scaled)?;
        // Unvoiced or quiet frames (what Auto Level ignores too) do not steer the follower.
        let steering_db =
            counts_for_level(frame.voicing, frame.loudness_db).then_some(frame.loudness_db);
        let held_f0_hz = self.normalizer.hold(&frame);
        // Below 24 kHz: a shifted f0 must stay renderable at any host rate.
        self.f0_hz = (held_f0_hz * settings.pitch_ratio()).clamp(20.0, 20_000.0);
        // The player's level is the input's own, so the Input Gain stays a trim on top.
        self.level
            .observe(frame.voicing, frame.loudness_db - settings.input_gain_db);
        let target_db = if settings.auto_level {
            self.level.offset_db()
        } else {
            0.0
        };
        self.level_offset_db += LEVEL_OFFSET_GLIDE * (target_db - self.level_offset_db);
        let model_loudness_db = frame.loudness_db + self.level_offset_db;
        // What the model hears: the shifted pitch, the level after input gain and Auto Level.
        self.status.monitor.record_frame(HeardFrame {
            f0_hz: (frame.voicing >= 0.5).then_some(self.f0_hz),
            loudness_db: model_loudness_db,
        });
        self.status
            .monitor
            .record_level_offset(self.level_offset_db);
        let features = self.normalizer.normalize(self.f0_hz, model_loudness_db);
        let gate = self.gate(&frame, &settings);

        // When style A fails its controls are silent: the synth fades out under the dry
        // crossfade.
        let calls = self.decoder.run(
            &mut self.models,
            &mut self.state,
            features,
            self.f0_hz,
            settings.morph,
        );
        let dry = calls == ModelCalls::StyleAFailed;
        let controls = self.decoder.controls();
        // The model played louder or softer by Auto Level; its output comes back by as much,
        // so the follower (which corrects at most 12 dB) still meets the input's own level.
        let level_gain = 10f32.powf(-self.level_offset_db / 20.0);
        controls.shape(&settings, gate * level_gain);
        Some(VoiceFrame {
            controls: controls.frame(self.f0_hz),
            steering_db,
            dry,
        })
    }

    /// Opens on voiced frames at or above the gate threshold, holds, then fades. At
    /// [`GATE_OFF_DB`] and below the gate is off: always open, the model plays everything.
    fn gate(&mut self, frame: &FrameFeatures, settings: &StyleSettings) -> f32 {
        if settings.gate_db <= GATE_OFF_DB {
            self.gate_gain = 1.0;
            return 1.0;
        }
        if frame.voicing >= 0.5 && frame.loudness_db >= settings.gate_db {
            self.gate_hold = GATE_HOLD_FRAMES;
        } else {
            self.gate_hold = self.gate_hold.saturating_sub(1);
        }
        let target = if self.gate_hold > 0 { 1.0 } else { 0.0 };
        self.gate_gain += GATE_COEFFICIENT * (target - self.gate_gain);
        self.gate_gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::features::F0_MIN_HZ;

    #[test]
    fn voice_latency_per_mode() {
        assert_eq!(
            LatencyMode::Quality
                .voice_latency_frames(F0_MIN_HZ)
                .unwrap(),
            3
        );
        assert_eq!(
            LatencyMode::LowLatency
                .voice_latency_frames(F0_MIN_HZ)
                .unwrap(),
            2
        );
        // A cello model (trained from 64 Hz, for its C2 at 65.4 Hz) needs a frame of two
        // 15.6 ms periods in quality mode: one frame more. 60 Hz would need two more, 50 Hz
        // three. Low latency mode tracks from 190 Hz whatever the model.
        assert_eq!(LatencyMode::Quality.voice_latency_frames(64.0).unwrap(), 4);
        assert_eq!(LatencyMode::Quality.voice_latency_frames(60.0).unwrap(), 5);
        assert_eq!(LatencyMode::Quality.voice_latency_frames(50.0).unwrap(), 6);
        assert_eq!(
            LatencyMode::LowLatency.voice_latency_frames(64.0).unwrap(),
            2
        );
        // Instruments whose lowest note is above 130 Hz (trumpet, clarinet) need one frame
        // less than the default floor; 120 Hz would not.
        assert_eq!(LatencyMode::Quality.voice_latency_frames(130.0).unwrap(), 2);
        assert_eq!(LatencyMode::Quality.voice_latency_frames(120.0).unwrap(), 3);
    }

    #[test]
    fn streaming_analysis_matches_the_offline_analysis_frame_for_frame() {
        // The plugin must see exactly the offline analysis (the trainer's, in quality mode), and
        // each mode's latency must be where its frames really are, for the default floor and a
        // cello's.
        let sr = SAMPLE_RATE_HZ as f32;
        let signal: Vec<f32> = (0..16_000)
            .map(|n| {
                let t = n as f32 / sr;
                0.3 * (std::f32::consts::TAU * (220.0 + 40.0 * t) * t).sin() * (t * 3.0).min(1.0)
            })
            .collect();
        let cases = [
            (LatencyMode::Quality, F0_MIN_HZ),
            (LatencyMode::LowLatency, F0_MIN_HZ),
            (LatencyMode::Quality, 64.0),
            (LatencyMode::Quality, 50.0),
            (LatencyMode::Quality, 130.0),
        ];
        for (mode, floor) in cases {
            let config = mode.analysis_config(floor);
            let offline = crate::dsp::analysis::analyze(&signal, sr, &config).unwrap();
            let mut analyzer = Analyzer::new(config).unwrap();
            let d = analyzer.delay_hops;
            assert_eq!(d, mode.voice_latency_frames(floor).unwrap());
            let mut streamed = Vec::new();
            let padded_len = signal.len() + d * HOP_SIZE;
            for start in (0..padded_len).step_by(HOP_SIZE) {
                let hop: Vec<f32> = (start..start + HOP_SIZE)
                    .map(|i| signal.get(i).copied().unwrap_or(0.0))
                    .collect();
                streamed.push(analyzer.process_hop(&hop));
            }
            // Frame i is ready after hop i + D − 1; nothing before.
            assert!(streamed[..d - 1].iter().all(Option::is_none));
            for (i, want) in offline.frames.iter().enumerate() {
                let got = streamed[i + d - 1].expect("frame ready");
                assert_eq!(got.f0_hz, want.f0_hz, "{mode:?} frame {i}");
                assert_eq!(got.voicing, want.voicing, "{mode:?} frame {i}");
                assert_eq!(got.loudness_db, want.loudness_db, "{mode:?} frame {i}");
            }
        }
    }

    #[test]
    fn pad_delay_delays_by_pad() {
        let mut pad = PadDelay::new(3);
        let mut out = [0.0; 4];
        pad.process(&[1.0, 2.0, 3.0, 4.0], &mut out);
        assert_eq!(out, [0.0, 0.0, 0.0, 1.0]);
        pad.process(&[5.0, 6.0, 7.0, 8.0], &mut out);
        assert_eq!(out, [2.0, 3.0, 4.0, 5.0]);
    }
}
