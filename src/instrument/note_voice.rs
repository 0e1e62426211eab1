//! One sounding note: its contour, its decoder state and its own host-rate renderer.
//!
//! A voice's frame clock starts at its note-on sample, so every note starts exactly where it
//! was played (not on a shared 4 ms grid); frames are rendered into a small FIFO as the mix
//! needs samples. A note-off takes effect at the next frame (≤ 4 ms later), where the release
//! starts from the level reached.

use std::collections::VecDeque;

use crate::dsp::midi_to_hz;
use crate::style::decoder::{DecoderState, StyleDecoder, VoiceModels};
use crate::style::features::{FeatureNormalizer, FRAME_RATE_HZ};
use crate::style::render::{max_hop_length, HostRenderer};
use crate::style::voice::VoiceFrame;

use super::contour::{velocity_db, Envelope, NotePitch, Stage};
use super::settings::VoiceSettings;

/// Length of one model frame, ms.
pub const FRAME_MS: f32 = 1000.0 / FRAME_RATE_HZ;
/// Frames quieter than this do not steer the renderer's loudness follower (as in Style).
const FOLLOW_FLOOR_DB: f32 = -60.0;

/// What every voice of a bank renders its frames with.
pub(super) struct FrameContext<'a> {
    pub models: &'a mut VoiceModels,
    pub decoder: &'a mut StyleDecoder,
    pub normalizer: &'a FeatureNormalizer,
    /// The f0 range the decoder was trained on; its input is clamped into it.
    pub f0_range_hz: (f32, f32),
    pub settings: &'a VoiceSettings,
    /// Pitch bend, semitones.
    pub bend_st: f32,
}

/// One note's voice; see the [module docs](self).
pub(super) struct NoteVoice {
    /// The key that started the note (note-offs match it).
    pub note: u8,
    /// Note-on order (the oldest is stolen first).
    pub age: u64,
    /// The key is still down.
    pub held: bool,
    /// The key is up but the sustain pedal holds the note.
    pub sustained: bool,
    active: bool,
    envelope: Envelope,
    pitch: NotePitch,
    state: DecoderState,
    renderer: HostRenderer,
    fifo: VecDeque<f32>,
    wet: Vec<f32>,
    dry_share: Vec<f32>,
    /// Output gain and where it is ramping to (fades for stealing and model switches).
    gain: f32,
    gain_target: f32,
    gain_step: f32,
}

impl NoteVoice {
    pub fn new(models: &VoiceModels, renderer: HostRenderer, rate: u32) -> Self {
        let hop = max_hop_length(rate);
        Self {
            note: 0,
            age: 0,
            held: false,
            sustained: false,
            active: false,
            envelope: Envelope::default(),
            pitch: NotePitch::default(),
            state: DecoderState::new(models),
            renderer,
            fifo: VecDeque::with_capacity(4 * hop),
            wet: vec![0.0; hop],
            dry_share: vec![0.0; hop],
            gain: 1.0,
            gain_target: 1.0,
            gain_step: 0.0,
        }
    }

    /// Sounding (or fading out).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Sounding and not on its way out (stolen or replaced).
    pub fn is_playing(&self) -> bool {
        self.active && self.gain_target > 0.0
    }

    /// The output gain now (fading voices are cut quietest first).
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Starts `note` at `velocity` (0–1) from silence.
    pub fn start(&mut self, note: u8, velocity: f32, age: u64, settings: &VoiceSettings) {
        self.clear();
        self.note = note;
        self.age = age;
        self.held = true;
        self.active = true;
        self.envelope
            .trigger(velocity_db(velocity, settings.dynamics_db));
        self.pitch.start(f32::from(note));
    }

    /// A new attack on a sounding voice (mono mode): the decoder and the renderer carry on,
    /// the level rises from where it is and the pitch glides.
    pub fn retrigger(&mut self, note: u8, velocity: f32, age: u64, settings: &VoiceSettings) {
        self.note = note;
        self.age = age;
        self.held = true;
        self.envelope
            .trigger(velocity_db(velocity, settings.dynamics_db));
        self.pitch.retarget(f32::from(note));
    }

    /// Glides to `note` without a new attack (legato, and returning to a held note).
    pub fn glide_to(&mut self, note: u8) {
        self.note = note;
        self.pitch.retarget(f32::from(note));
    }

    /// Takes over `other`'s note where it is (contour, pitch) and fades in over `samples`:
    /// the other half of a model switch's crossfade.
    pub fn take_over(&mut self, other: &NoteVoice, samples: usize) {
        self.clear();
        self.note = other.note;
        self.age = other.age;
        self.held = other.held;
        self.sustained = other.sustained;
        self.active = true;
        self.envelope = other.envelope;
        self.pitch = other.pitch;
        self.gain = 0.0;
        self.fade_to(1.0, samples);
    }

    /// The key went up: the release starts at the next frame.
    pub fn release(&mut self) {
        self.held = false;
        self.sustained = false;
        self.envelope.release();
    }

    /// The key went up under the sustain pedal: the note sounds on until the pedal lifts.
    pub fn sustain(&mut self) {
        self.held = false;
        self.sustained = true;
    }

    /// Fades out over `samples` and goes quiet (stealing, model switch).
    pub fn fade_out(&mut self, samples: usize) {
        self.held = false;
        self.sustained = false;
        self.fade_to(0.0, samples);
    }

    fn fade_to(&mut self, target: f32, samples: usize) {
        self.gain_target = target;
        self.gain_step = (target - self.gain) / samples.max(1) as f32;
    }

    /// Silences the voice at once and frees it.
    pub fn clear(&mut self) {
        self.active = false;
        self.held = false;
        self.sustained = false;
        self.envelope = Envelope::default();
        self.state.reset();
        self.renderer.reset();
        self.fifo.clear();
        self.gain = 1.0;
        self.gain_target = 1.0;
        self.gain_step = 0.0;
    }

    /// Adds the voice's next `out.len()` samples to `out`, rendering frames as needed.
    pub fn mix_into(&mut self, out: &mut [f32], context: &mut FrameContext<'_>) {
        if !self.active {
            return;
        }
        while self.fifo.len() < out.len() && self.render_frame(context) {}
        for y in out.iter_mut() {
            let Some(x) = self.fifo.pop_front() else {
                break;
            };
            if self.gain != self.gain_target {
                self.gain += self.gain_step;
                if (self.gain_step > 0.0 && self.gain >= self.gain_target)
                    || (self.gain_step <= 0.0 && self.gain <= self.gain_target)
                {
                    self.gain = self.gain_target;
                }
            }
            *y += self.gain * x;
        }
        let faded_out = self.gain_target == 0.0 && self.gain == 0.0;
        let finished = self.envelope.stage() == Stage::Done && self.fifo.is_empty();
        if faded_out || finished {
            self.clear();
        }
    }

    /// Renders one frame into the FIFO; `false` once the note has died away.
    fn render_frame(&mut self, context: &mut FrameContext<'_>) -> bool {
        if self.envelope.stage() == Stage::Done {
            return false;
        }
        let settings = context.settings;
        let level_db = self.envelope.next(FRAME_MS, settings);
        let transpose = settings.style.pitch_shift_st + 12.0 * settings.style.octave;
        let pitch = self.pitch.next(FRAME_MS, settings, context.bend_st) + transpose;
        let f0_hz = midi_to_hz(pitch).clamp(20.0, 20_000.0);
        // The synth plays the note's own pitch; the decoder hears it clamped into the range
        // it was trained on (the timbre of its nearest trained pitch), see `VoiceBank`.
        let (lo, hi) = context.f0_range_hz;
        let features = context.normalizer.normalize(f0_hz.clamp(lo, hi), level_db);
        context.decoder.run(
            context.models,
            &mut self.state,
            features,
            f0_hz,
            settings.style.morph,
        );
        let controls = context.decoder.controls();
        controls.shape(&settings.style, 1.0);
        let sustaining = matches!(
            self.envelope.stage(),
            Stage::Attack | Stage::Decay | Stage::Sustain
        );
        let frame = VoiceFrame {
            controls: controls.frame(f0_hz),
            steering_db: (sustaining && level_db >= FOLLOW_FLOOR_DB).then_some(level_db),
            dry: false,
        };
        let len = self
            .renderer
            .render(Some(frame), &mut self.wet, &mut self.dry_share);
        self.fifo.extend(&self.wet[..len]);
        true
    }
}
