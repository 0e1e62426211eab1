//! The Voice instrument on the engine's worker: note events in, the sum of its voices out.
//!
//! ```text
//! process(): MIDI ─► TimedNote (stream index) ─► rtrb ─┐
//! worker:  hop at stream index i ─► events before i + hop, in order, at their sample ─┘
//!          ─► voices (poly / mono / legato) ─► Σ NoteVoice (decoder + host-rate synth) ─► out
//! ```
//! Events carry the engine's stream index, so a note starts on the very sample it was played
//! at, and the latency is the engine's alone (the processor adds none).
//!
//! Models arrive as a ready [`VoiceBank`] over a channel (loaded off the real-time paths).
//! On a switch, every sounding note is taken over by the new bank where it is — same contour,
//! same pitch — and the two crossfade over [`SWITCH_FADE_MS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::engine::audio::{HopProcessor, SWAP_FADE_MS};
use crate::style::controls::SettingsSmoother;
use crate::style::decoder::{StyleDecoder, VoiceModels};
use crate::style::features::{timbre_analysis_config, FeatureNormalizer};
use crate::style::render::HostRenderer;
use crate::style::{StyleError, StyleStatus};

use super::note_voice::{FrameContext, NoteVoice};
use super::settings::{PlayMode, SharedVoiceSettings, VoiceSettings, MAX_POLYPHONY};

/// Samples per worker hop, at any rate: voices keep their own frame clocks, so the hop only
/// sets how often events are read (and adds itself to the latency).
pub const INSTRUMENT_HOP: usize = 64;
/// Voices beyond the polyphony that a stolen note fades out on while the new one starts.
const SPARE_VOICES: usize = 4;
/// A stolen voice fades out over this long.
const STEAL_FADE_MS: f32 = 8.0;
/// A model switch crossfades the old bank's notes into the new one's over this long.
pub const SWITCH_FADE_MS: f32 = SWAP_FADE_MS;
/// Held keys remembered in mono modes (to return to when the top one goes up).
const NOTE_STACK: usize = 16;
/// Room for this many note events between the audio thread and the worker.
pub const EVENT_CAPACITY: usize = 4096;

/// What a note event does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoteAction {
    /// Key down, velocity 0–1.
    On {
        /// MIDI note number.
        note: u8,
        /// 0–1.
        velocity: f32,
    },
    /// Key up.
    Off {
        /// MIDI note number.
        note: u8,
    },
    /// Pitch bend, −1 … 1 (scaled by the bend range).
    Bend(f32),
    /// Sustain pedal (MIDI CC 64) down or up: while down, released keys keep sounding.
    Sustain(bool),
    /// Every note released (MIDI all-notes-off, the host's panic).
    AllOff,
}

/// A note event at a sample of the engine's stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedNote {
    /// Stream index ([`crate::engine::audio::AudioEngine::stream_position`] + offset in block).
    pub index: u64,
    /// What happens there.
    pub action: NoteAction,
}

/// The audio thread's end of the event queue.
pub type NoteSender = rtrb::Producer<TimedNote>;

/// A queue for [`EVENT_CAPACITY`] events: the sender for `process()`, the receiver for the
/// processor.
pub fn note_queue() -> (NoteSender, rtrb::Consumer<TimedNote>) {
    rtrb::RingBuffer::new(EVENT_CAPACITY)
}

/// Counters the instrument publishes (read by the plugin, CLI and tests).
#[derive(Debug, Default)]
pub struct InstrumentStats {
    /// Notes started.
    pub notes_played: AtomicU64,
    /// Notes whose pitch lies outside the model's trained f0 range (played at their pitch with
    /// the timbre of the range's edge).
    pub notes_outside_range: AtomicU64,
    /// Notes taken from a sounding voice to make room (faded over 8 ms).
    pub voices_stolen: AtomicU64,
    /// Events dropped because the queue was full (counted by the sender).
    pub events_dropped: AtomicU64,
}

/// A loaded model with a voice per playable note: everything a switch hands the worker.
pub struct VoiceBank {
    models: VoiceModels,
    normalizer: FeatureNormalizer,
    decoder: StyleDecoder,
    f0_range_hz: (f32, f32),
    voices: Vec<NoteVoice>,
}

impl VoiceBank {
    /// Voices for `models` at `rate` Hz.
    ///
    /// # Errors
    /// A rate the synthesiser cannot run at.
    pub fn new(
        models: VoiceModels,
        rate: u32,
        status: Arc<StyleStatus>,
    ) -> Result<Self, StyleError> {
        let a = &models.a;
        // The renderer's loudness follower measures as the analysis does (its window).
        let analysis = timbre_analysis_config(a.feature_config().f0_min_hz);
        let voices = (0..MAX_POLYPHONY + SPARE_VOICES)
            .map(|_| {
                let renderer =
                    HostRenderer::new(rate, a.harmonics(), a.noise_bands(), a.band(), &analysis)?;
                Ok(NoteVoice::new(&models, renderer, rate))
            })
            .collect::<Result<Vec<_>, StyleError>>()?;
        let features = a.feature_config();
        Ok(Self {
            normalizer: FeatureNormalizer::new(features.clone()),
            f0_range_hz: (features.f0_min_hz, features.f0_max_hz),
            decoder: StyleDecoder::new(&models, status, "style A failed: the note played silence"),
            models,
            voices,
        })
    }

    /// Style A's name (and B's).
    pub fn names(&self) -> (String, Option<String>) {
        (
            self.models.a.name().to_owned(),
            self.models.b.as_ref().map(|b| b.name().to_owned()),
        )
    }

    /// The trained f0 range, Hz.
    pub fn f0_range_hz(&self) -> (f32, f32) {
        self.f0_range_hz
    }

    fn any_active(&self) -> bool {
        self.voices.iter().any(NoteVoice::is_active)
    }

    fn mix_into(&mut self, out: &mut [f32], settings: &VoiceSettings, bend_st: f32) {
        let Self {
            models,
            normalizer,
            decoder,
            f0_range_hz,
            voices,
        } = self;
        let mut context = FrameContext {
            models,
            decoder,
            normalizer,
            f0_range_hz: *f0_range_hz,
            settings,
            bend_st,
        };
        for voice in voices.iter_mut() {
            voice.mix_into(out, &mut context);
        }
    }

    /// A voice to start a note on: a free one, else the quietest fading one (cut).
    fn free_voice(&mut self) -> &mut NoteVoice {
        let index = self
            .voices
            .iter()
            .position(|v| !v.is_active())
            .or_else(|| {
                (0..self.voices.len())
                    .filter(|&i| !self.voices[i].is_playing())
                    .min_by(|&i, &j| self.voices[i].gain().total_cmp(&self.voices[j].gain()))
            })
            .unwrap_or(0);
        &mut self.voices[index]
    }
}

/// Keys held in mono modes, most recent last.
#[derive(Debug, Default)]
struct NoteStack {
    notes: [u8; NOTE_STACK],
    len: usize,
}

impl NoteStack {
    fn push(&mut self, note: u8) {
        self.remove(note);
        if self.len == NOTE_STACK {
            self.notes.copy_within(1.., 0);
            self.len -= 1;
        }
        self.notes[self.len] = note;
        self.len += 1;
    }

    fn remove(&mut self, note: u8) {
        if let Some(i) = self.notes[..self.len].iter().position(|&n| n == note) {
            self.notes.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }

    fn top(&self) -> Option<u8> {
        self.len.checked_sub(1).map(|i| self.notes[i])
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The instrument's [`HopProcessor`]; see the [module docs](self).
pub struct InstrumentProcessor {
    events: rtrb::Consumer<TimedNote>,
    banks: Receiver<VoiceBank>,
    current: Option<VoiceBank>,
    /// The bank being switched away from, until its notes have faded.
    previous: Option<VoiceBank>,
    settings: Arc<SharedVoiceSettings>,
    smoother: SettingsSmoother,
    stats: Arc<InstrumentStats>,
    status: Arc<StyleStatus>,
    bend: f32,
    /// The sustain pedal is down.
    sustain: bool,
    stack: NoteStack,
    next_age: u64,
    hop_start: u64,
    mix: Vec<f32>,
    steal_fade: usize,
    switch_fade: usize,
}

impl InstrumentProcessor {
    /// A processor at `rate` Hz playing `bank` (`None`: silent until one arrives on `banks`),
    /// reading note events from `events`.
    pub fn new(
        rate: u32,
        bank: Option<VoiceBank>,
        events: rtrb::Consumer<TimedNote>,
        banks: Receiver<VoiceBank>,
        settings: Arc<SharedVoiceSettings>,
        stats: Arc<InstrumentStats>,
        status: Arc<StyleStatus>,
    ) -> Self {
        let samples = |ms: f32| (ms * rate as f32 / 1000.0).round() as usize;
        Self {
            events,
            banks,
            current: bank,
            previous: None,
            settings,
            smoother: SettingsSmoother::new(20.0, rate as f32 / INSTRUMENT_HOP as f32),
            stats,
            status,
            bend: 0.0,
            sustain: false,
            stack: NoteStack::default(),
            next_age: 0,
            hop_start: 0,
            mix: vec![0.0; INSTRUMENT_HOP],
            steal_fade: samples(STEAL_FADE_MS),
            switch_fade: samples(SWITCH_FADE_MS),
        }
    }

    /// Notes sounding now (fading ones included).
    pub fn active_voices(&self) -> usize {
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .map(|bank| bank.voices.iter().filter(|v| v.is_active()).count())
            .sum()
    }

    fn switch_to(&mut self, mut bank: VoiceBank) {
        // A switch still fading from the one before is cut: its notes are nearly silent.
        self.previous = None;
        if let Some(mut old) = self.current.take() {
            for voice in old.voices.iter_mut().filter(|v| v.is_playing()) {
                bank.free_voice().take_over(voice, self.switch_fade);
                voice.fade_out(self.switch_fade);
            }
            self.previous = Some(old);
        }
        let (a, b) = bank.names();
        self.status.set(match b {
            Some(b) => format!("playing {a} ↔ {b}"),
            None => format!("playing {a}"),
        });
        self.current = Some(bank);
    }

    fn apply(&mut self, action: NoteAction, settings: &VoiceSettings) {
        match action {
            NoteAction::On { note, velocity } => self.note_on(note, velocity, settings),
            NoteAction::Off { note } => self.note_off(note, settings.mode),
            NoteAction::Bend(value) => {
                if value.is_finite() {
                    self.bend = value.clamp(-1.0, 1.0);
                }
            }
            NoteAction::Sustain(down) => {
                self.sustain = down;
                if !down {
                    for bank in [&mut self.current, &mut self.previous]
                        .into_iter()
                        .flatten()
                    {
                        bank.voices
                            .iter_mut()
                            .filter(|v| v.sustained)
                            .for_each(NoteVoice::release);
                    }
                }
            }
            NoteAction::AllOff => {
                self.stack.clear();
                self.sustain = false;
                for bank in [&mut self.current, &mut self.previous]
                    .into_iter()
                    .flatten()
                {
                    bank.voices.iter_mut().for_each(NoteVoice::release);
                }
            }
        }
    }

    fn note_on(&mut self, note: u8, velocity: f32, settings: &VoiceSettings) {
        let Some(bank) = self.current.as_mut() else {
            return;
        };
        let age = self.next_age;
        self.next_age += 1;
        self.stats.notes_played.fetch_add(1, Ordering::Relaxed);
        let (lo, hi) = bank.f0_range_hz;
        let transpose = settings.style.pitch_shift_st + 12.0 * settings.style.octave;
        let hz = crate::dsp::midi_to_hz(f32::from(note) + transpose);
        if !(lo..=hi).contains(&hz)
            && self
                .stats
                .notes_outside_range
                .fetch_add(1, Ordering::Relaxed)
                == 0
        {
            // Said once (on the worker, not the audio thread); the counter keeps the tally.
            let (a, _) = bank.names();
            self.status.set(format!(
                "note {note} ({hz:.0} Hz) is outside {a}'s trained range {lo:.0}–{hi:.0} Hz: \
                 such notes play at their own pitch with the timbre of the range's edge"
            ));
        }
        if settings.mode != PlayMode::Poly {
            self.stack.push(note);
            let playing = bank.voices.iter_mut().find(|v| v.is_playing());
            match (playing, settings.mode) {
                (Some(voice), PlayMode::Legato) if voice.held => voice.glide_to(note),
                (Some(voice), _) => voice.retrigger(note, velocity, age, settings),
                (None, _) => bank.free_voice().start(note, velocity, age, settings),
            }
            return;
        }
        // The same key again: its old note lets go (no two voices on one key).
        for voice in bank.voices.iter_mut().filter(|v| v.held && v.note == note) {
            voice.release();
        }
        let playing = bank.voices.iter().filter(|v| v.is_playing()).count();
        if playing >= settings.polyphony {
            // Steal the oldest released note, else the oldest held one.
            if let Some(victim) = bank
                .voices
                .iter_mut()
                .filter(|v| v.is_playing())
                .min_by_key(|v| (v.held, v.age))
            {
                victim.fade_out(self.steal_fade);
                self.stats.voices_stolen.fetch_add(1, Ordering::Relaxed);
            }
        }
        bank.free_voice().start(note, velocity, age, settings);
    }

    fn note_off(&mut self, note: u8, mode: PlayMode) {
        let Some(bank) = self.current.as_mut() else {
            return;
        };
        self.stack.remove(note);
        // Keys held from before a switch to poly mode do not make poly notes glide.
        let under = if mode == PlayMode::Poly {
            None
        } else {
            self.stack.top()
        };
        for voice in bank.voices.iter_mut().filter(|v| v.held && v.note == note) {
            match under {
                // Mono modes: back to the key still held under it.
                Some(under) => voice.glide_to(under),
                None if self.sustain => voice.sustain(),
                None => voice.release(),
            }
        }
    }

    /// Renders `self.mix[from..to]` with every sounding voice.
    fn render(&mut self, from: usize, to: usize, settings: &VoiceSettings) {
        if from >= to {
            return;
        }
        let bend_st = self.bend * settings.bend_range_st;
        for bank in [&mut self.current, &mut self.previous]
            .into_iter()
            .flatten()
        {
            bank.mix_into(&mut self.mix[from..to], settings, bend_st);
        }
    }
}

impl HopProcessor for InstrumentProcessor {
    fn hop_size(&self) -> usize {
        INSTRUMENT_HOP
    }

    fn latency_samples(&self) -> usize {
        0
    }

    fn begin_hop(&mut self, stream_index: u64) {
        self.hop_start = stream_index;
    }

    fn process_hop(&mut self, _input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        while let Ok(bank) = self.banks.try_recv() {
            self.switch_to(bank);
        }
        let mut settings = self.settings.load();
        settings.style = self.smoother.next(settings.style);
        self.mix.fill(0.0);
        let end = self.hop_start + INSTRUMENT_HOP as u64;
        let mut rendered = 0;
        while let Ok(event) = self.events.peek() {
            if event.index >= end {
                break;
            }
            let event = *event;
            let _ = self.events.pop();
            // Events from before this hop (a stream restart) apply at its start.
            let at = event.index.saturating_sub(self.hop_start) as usize;
            self.render(rendered, at, &settings);
            rendered = rendered.max(at);
            self.apply(event.action, &settings);
        }
        self.render(rendered, INSTRUMENT_HOP, &settings);
        if self.previous.as_ref().is_some_and(|b| !b.any_active()) {
            self.previous = None;
        }
        for channel in output.iter_mut() {
            channel.copy_from_slice(&self.mix);
        }
    }

    fn reset(&mut self) {
        self.previous = None;
        if let Some(bank) = self.current.as_mut() {
            bank.voices.iter_mut().for_each(NoteVoice::clear);
        }
        self.stack.clear();
        self.bend = 0.0;
        self.sustain = false;
        self.smoother.reset();
    }
}
