//! Continuo Voice: an instrument that plays MIDI with the timbre models.
//!
//! Threads: the audio thread (`process`) queues the block's note events (stamped with the
//! engine's stream index) and reads the rendered audio back; the engine's worker runs
//! [`crate::instrument::InstrumentProcessor`]; a loader thread watches Style A/B and hands a
//! newly loaded bank of voices to the worker, where sounding notes crossfade over to it.

use std::num::NonZeroU32;
use std::sync::Arc;

use nice_plug::prelude::*;

use crate::engine::audio::{MixGain, Timing};
use crate::instrument::settings::{
    ATTACK, BEND_RANGE, DECAY, DYNAMICS, GLIDE, POLYPHONY, RELEASE, SUSTAIN, VIBRATO_DEPTH,
    VIBRATO_RATE,
};
use crate::instrument::{
    load_bank, InstrumentEngine, NoteAction, PlayMode, SharedVoiceSettings, VoiceBank,
    VoiceSettings,
};
use crate::model::{chain_message, BackendChoice, ModelDirs};
use crate::plugin::bypass::BypassFade;
use crate::plugin::loader::ChoiceLoader;
use crate::plugin::model_choice::SavedModelName;
use crate::plugin::style::{
    describe, float_param, no_style_reason, output_gain_param, percent_param, style_a, style_b,
    style_choice,
};
use crate::plugin::{host_timing, OfflineRender};
use crate::style::controls::{BALANCE, BRIGHTNESS, MORPH, OCTAVE, PITCH_SHIFT};
use crate::style::{StyleChoice, StyleSettings, StyleStatus};

/// MIDI CC 120 (all sound off) and 123 (all notes off): both release every note.
const CC_ALL_SOUND_OFF: u8 = 120;
const CC_ALL_NOTES_OFF: u8 = 123;
/// MIDI CC 64: the sustain pedal (down at ≥ 64).
const CC_SUSTAIN: u8 = 64;

/// How notes share the voices, as a parameter.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeParam {
    /// Chords; the oldest note is stolen beyond the polyphony.
    #[id = "poly"]
    #[name = "Poly"]
    Poly,
    /// One note at a time, each with its own attack.
    #[id = "mono"]
    #[name = "Mono"]
    Mono,
    /// One note at a time, gliding without a new attack while a key is held.
    #[id = "legato"]
    #[name = "Legato"]
    Legato,
}

impl From<ModeParam> for PlayMode {
    fn from(mode: ModeParam) -> Self {
        match mode {
            ModeParam::Poly => PlayMode::Poly,
            ModeParam::Mono => PlayMode::Mono,
            ModeParam::Legato => PlayMode::Legato,
        }
    }
}

/// Parameters. IDs are stable: never rename them (saved sessions refer to them).
#[derive(Params)]
pub struct VoiceParams {
    /// Style A (the same list as Continuo Style's).
    #[id = "style"]
    pub style: IntParam,
    /// Style B to morph towards: 0 = none.
    #[id = "style_b"]
    pub style_b: IntParam,
    #[id = "morph"]
    pub morph: FloatParam,
    #[id = "pitch"]
    pub pitch_shift: FloatParam,
    #[id = "octave"]
    pub octave: IntParam,
    #[id = "balance"]
    pub balance: FloatParam,
    #[id = "bright"]
    pub brightness: FloatParam,
    #[id = "attack"]
    pub attack: FloatParam,
    #[id = "decay"]
    pub decay: FloatParam,
    #[id = "sustain"]
    pub sustain: FloatParam,
    #[id = "release"]
    pub release: FloatParam,
    #[id = "dynamics"]
    pub dynamics: FloatParam,
    #[id = "glide"]
    pub glide: FloatParam,
    #[id = "vib_depth"]
    pub vibrato_depth: FloatParam,
    #[id = "vib_rate"]
    pub vibrato_rate: FloatParam,
    #[id = "bend_range"]
    pub bend_range: FloatParam,
    #[id = "voices"]
    pub polyphony: IntParam,
    #[id = "mode"]
    pub mode: EnumParam<ModeParam>,
    #[id = "out_gain"]
    pub output_gain: FloatParam,
    /// Host bypass: fades to silence.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Offline rendering: as the host says, or always (waits for the worker).
    #[id = "offline"]
    pub offline: EnumParam<OfflineRender>,
    /// Style A by name, for sessions.
    #[persist = "style-name"]
    pub style_name: SavedModelName,
    /// Style B by name ("" = off), for sessions.
    #[persist = "style-b-name"]
    pub style_b_name: SavedModelName,
}

/// A time parameter over `spec`, skewed so short times get most of the travel.
fn time_param(name: &str, spec: crate::style::controls::ParamSpec) -> FloatParam {
    FloatParam::new(
        name,
        spec.default,
        FloatRange::Skewed {
            min: spec.min,
            max: spec.max,
            factor: FloatRange::skew_factor(-2.0),
        },
    )
    .with_unit(spec.unit)
    .with_value_to_string(formatters::v2s_f32_rounded(1))
}

impl Default for VoiceParams {
    fn default() -> Self {
        let style_name = SavedModelName::new(style_a());
        let style_b_name = SavedModelName::new(style_b());
        Self {
            style: style_a().param("Style", 0, &style_name),
            style_b: style_b().param("Style B", 0, &style_b_name),
            style_name,
            style_b_name,
            morph: percent_param("Style Morph", MORPH),
            pitch_shift: float_param("Pitch Shift", PITCH_SHIFT),
            octave: IntParam::new(
                "Octave",
                OCTAVE.default as i32,
                IntRange::Linear {
                    min: OCTAVE.min as i32,
                    max: OCTAVE.max as i32,
                },
            ),
            balance: float_param("Harmonic/Noise", BALANCE),
            brightness: float_param("Brightness", BRIGHTNESS),
            attack: time_param("Attack", ATTACK),
            decay: time_param("Decay", DECAY),
            sustain: float_param("Sustain", SUSTAIN)
                .with_value_to_string(formatters::v2s_f32_rounded(1)),
            release: time_param("Release", RELEASE),
            dynamics: float_param("Dynamics", DYNAMICS)
                .with_value_to_string(formatters::v2s_f32_rounded(1)),
            glide: time_param("Glide", GLIDE),
            vibrato_depth: float_param("Vibrato Depth", VIBRATO_DEPTH)
                .with_value_to_string(formatters::v2s_f32_rounded(1)),
            vibrato_rate: float_param("Vibrato Rate", VIBRATO_RATE)
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            bend_range: float_param("Bend Range", BEND_RANGE),
            polyphony: IntParam::new(
                "Voices",
                POLYPHONY.default as i32,
                IntRange::Linear {
                    min: POLYPHONY.min as i32,
                    max: POLYPHONY.max as i32,
                },
            ),
            mode: EnumParam::new("Play Mode", ModeParam::Poly),
            output_gain: output_gain_param(),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            offline: EnumParam::new("Offline Render", OfflineRender::Auto).non_automatable(),
        }
    }
}

impl VoiceParams {
    /// The settings as the worker reads them.
    fn voice_settings(&self) -> VoiceSettings {
        VoiceSettings {
            style: StyleSettings {
                pitch_shift_st: self.pitch_shift.value(),
                octave: self.octave.value() as f32,
                balance: self.balance.value(),
                brightness: self.brightness.value(),
                morph: self.morph.value(),
                ..StyleSettings::default()
            },
            attack_ms: self.attack.value(),
            decay_ms: self.decay.value(),
            sustain_db: self.sustain.value(),
            release_ms: self.release.value(),
            dynamics_db: self.dynamics.value(),
            glide_ms: self.glide.value(),
            vibrato_cents: self.vibrato_depth.value(),
            vibrato_hz: self.vibrato_rate.value(),
            bend_range_st: self.bend_range.value(),
            polyphony: self.polyphony.value().max(1) as usize,
            mode: self.mode.value().into(),
        }
    }

    /// Styles A and B as chosen; `None` when no model exists.
    fn choice(&self) -> Option<StyleChoice> {
        style_choice(&self.style, &self.style_b)
    }
}

/// Loads `choice` into a bank at `rate`, saying what plays (or why nothing does) in `status`.
fn build_bank(
    choice: Option<&StyleChoice>,
    rate: u32,
    status: &Arc<StyleStatus>,
) -> Option<VoiceBank> {
    let Some(choice) = choice else {
        report(
            status,
            format!("{}: Voice plays nothing", no_style_reason()),
        );
        return None;
    };
    let dirs = ModelDirs::standard(&[]);
    match load_bank(choice, &dirs, BackendChoice::Auto, rate, status.clone()) {
        Ok((bank, refused)) => {
            let (lo, hi) = bank.f0_range_hz();
            let playing = match refused {
                Some(error) => format!(
                    "playing {} (style B refused: {})",
                    choice.a,
                    chain_message(&error)
                ),
                None => format!("playing {}", describe(choice)),
            };
            report(
                status,
                format!("{playing}; trained on {lo:.0}–{hi:.0} Hz, notes outside keep their pitch with the timbre of the nearest edge"),
            );
            Some(bank)
        }
        Err(error) => {
            status
                .load_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            report(
                status,
                format!(
                    "cannot load {}: {}",
                    describe(choice),
                    chain_message(&error)
                ),
            );
            None
        }
    }
}

/// Logs `message` and makes it the status the UI shows.
fn report(status: &StyleStatus, message: String) {
    nice_log!("Continuo Voice: {message}");
    status.set(message);
}

/// The running instrument. Field order is drop order: the loader stops before the engine.
struct Running {
    _loader: Option<ChoiceLoader>,
    engine: InstrumentEngine,
    /// As the host said at activation.
    timing: Timing,
}

/// The Continuo Voice plugin.
pub struct ContinuoVoice {
    params: Arc<VoiceParams>,
    settings: Arc<SharedVoiceSettings>,
    status: Arc<StyleStatus>,
    running: Option<Running>,
    bypass: BypassFade,
}

impl Default for ContinuoVoice {
    fn default() -> Self {
        Self {
            params: Arc::new(VoiceParams::default()),
            settings: Arc::new(SharedVoiceSettings::default()),
            status: Arc::new(StyleStatus::default()),
            running: None,
            bypass: BypassFade::default(),
        }
    }
}

impl ContinuoVoice {
    fn start(
        &self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
    ) -> Result<Running, String> {
        let rate = buffer_config.sample_rate.round();
        if !(8_000.0..=384_000.0).contains(&rate) {
            return Err(format!("cannot run at {rate} Hz"));
        }
        let rate = rate as u32;
        let channels = audio_io_layout
            .main_output_channels
            .map_or(2, NonZeroU32::get) as usize;
        // Activation may block: the first models load here, so a bounce sounds from its start.
        let choice = self.params.choice();
        let bank = build_bank(choice.as_ref(), rate, &self.status);
        let engine = InstrumentEngine::start(
            rate,
            channels,
            buffer_config.max_buffer_size as usize,
            bank,
            self.settings.clone(),
            self.status.clone(),
        )
        .map_err(|e| format!("cannot start the worker thread: {e}"))?;
        let banks = engine.bank_sender();
        let params = self.params.clone();
        let status = self.status.clone();
        let loader = ChoiceLoader::spawn(
            "continuo-voice-loader",
            choice,
            move || params.choice(),
            move |wanted| match build_bank(wanted.as_ref(), rate, &status) {
                Some(bank) => banks.send(bank).is_ok(),
                None => true,
            },
        );
        let timing = host_timing(buffer_config.process_mode);
        Ok(Running {
            _loader: loader,
            engine,
            timing,
        })
    }
}

impl Plugin for ContinuoVoice {
    const NAME: &'static str = "Continuo Voice";
    const VENDOR: &'static str = super::VENDOR;
    const URL: &'static str = super::URL;
    const EMAIL: &'static str = super::EMAIL;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: None,
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: None,
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];
    const MIDI_INPUT: MidiConfig = MidiConfig::MidiCCs;

    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn filter_state(state: &mut PluginState) {
        style_a().restore(state, "style", "style-name", "Continuo Voice");
        style_b().restore(state, "style_b", "style-b-name", "Continuo Voice");
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.running = None;
        self.bypass.set_sample_rate(buffer_config.sample_rate);
        self.settings.store(&self.params.voice_settings());
        // Activation never fails (a host may ask for any rate); where Voice cannot run it is
        // silent and says why.
        match self.start(audio_io_layout, buffer_config) {
            Ok(running) => {
                nice_log!(
                    "Continuo Voice: activated at {} Hz, {:?} processing",
                    buffer_config.sample_rate,
                    buffer_config.process_mode
                );
                context.set_latency_samples(running.engine.latency_samples() as u32);
                self.running = Some(running);
            }
            Err(reason) => {
                report(&self.status, format!("{reason}: Voice plays nothing"));
                context.set_latency_samples(0);
            }
        }
        true
    }

    fn reset(&mut self) {
        if let Some(running) = &mut self.running {
            running.engine.reset();
        }
        self.bypass.reset(self.params.bypass.value());
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(running) = &mut self.running else {
            for channel in buffer.as_slice() {
                channel.fill(0.0);
            }
            while context.next_event().is_some() {}
            return ProcessStatus::Normal;
        };
        self.settings.store(&self.params.voice_settings());
        while let Some(event) = context.next_event() {
            if let Some((timing, action)) = note_action(&event) {
                running.engine.send(timing as usize, action);
            }
        }
        self.bypass.follow(self.params.bypass.value());
        let timing = self.params.offline.value().timing(running.timing);
        let params = &self.params;
        let bypass = &self.bypass;
        running
            .engine
            .process(buffer.as_slice(), timing, || MixGain {
                mix: 1.0,
                gain: params.output_gain.smoothed.next(),
                bypass: bypass.next(),
            });
        ProcessStatus::KeepAlive
    }

    fn deactivate(&mut self) {
        self.running = None;
    }
}

/// What a host's note event asks of the instrument (MIDI channel ignored: omni), at its
/// sample in the block.
fn note_action(event: &NoteEvent<()>) -> Option<(u32, NoteAction)> {
    match *event {
        NoteEvent::NoteOn {
            timing,
            key,
            velocity,
            ..
        } => match key.number() {
            // Velocity 0 is a note-off in MIDI.
            Some(note) if velocity > 0.0 => Some((timing, NoteAction::On { note, velocity })),
            Some(note) => Some((timing, NoteAction::Off { note })),
            None => None,
        },
        NoteEvent::NoteOff { timing, key, .. } | NoteEvent::Choke { timing, key, .. } => {
            Some(match key.number() {
                Some(note) => (timing, NoteAction::Off { note }),
                None => (timing, NoteAction::AllOff),
            })
        }
        NoteEvent::MidiPitchBend { timing, value, .. } => {
            Some((timing, NoteAction::Bend(value * 2.0 - 1.0)))
        }
        NoteEvent::MidiCC { timing, cc, .. }
            if cc == CC_ALL_NOTES_OFF || cc == CC_ALL_SOUND_OFF =>
        {
            Some((timing, NoteAction::AllOff))
        }
        NoteEvent::MidiCC {
            timing, cc, value, ..
        } if cc == CC_SUSTAIN => Some((timing, NoteAction::Sustain(value >= 0.5))),
        _ => None,
    }
}

impl ClapPlugin for ContinuoVoice {
    const CLAP_ID: &'static str = "org.continuo.voice";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Plays MIDI notes with the neural timbre models");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::Instrument,
        ClapFeature::Synthesizer,
        ClapFeature::Stereo,
        ClapFeature::Mono,
    ];
}

impl Vst3Plugin for ContinuoVoice {
    const VST3_CLASS_ID: [u8; 16] = *b"ContinuoVoice01!";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Synth];
}

#[cfg(test)]
mod tests {
    use super::*;
    use nice_plug::midi::{Channel, Key, VoiceID};

    #[test]
    fn parameter_ranges_and_defaults_are_the_settings_specs() {
        let params = VoiceParams::default();
        assert_eq!(params.voice_settings(), VoiceSettings::default());
        let floats = [
            (&params.attack, ATTACK),
            (&params.decay, DECAY),
            (&params.sustain, SUSTAIN),
            (&params.release, RELEASE),
            (&params.dynamics, DYNAMICS),
            (&params.glide, GLIDE),
            (&params.vibrato_depth, VIBRATO_DEPTH),
            (&params.vibrato_rate, VIBRATO_RATE),
            (&params.bend_range, BEND_RANGE),
        ];
        for (param, spec) in floats {
            let name = param.name();
            assert!((param.preview_plain(0.0) - spec.min).abs() < 1e-3, "{name}");
            assert!((param.preview_plain(1.0) - spec.max).abs() < 1e-2, "{name}");
        }
    }

    #[test]
    fn every_parameter_text_parses_back_to_the_same_value() {
        let params = VoiceParams::default();
        let map = params.param_map();
        assert!(map.len() >= 20, "all parameters walked");
        for (id, param, _) in map {
            crate::plugin::test_support::assert_text_round_trips(&id, param);
        }
    }

    #[test]
    fn host_note_events_become_note_actions() {
        let on = |velocity| NoteEvent::NoteOn {
            timing: 5,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(3),
            key: Key::Number(60),
            velocity,
        };
        assert_eq!(
            note_action(&on(0.5)),
            Some((
                5,
                NoteAction::On {
                    note: 60,
                    velocity: 0.5
                }
            ))
        );
        assert_eq!(
            note_action(&on(0.0)),
            Some((5, NoteAction::Off { note: 60 }))
        );
        let choke_all = NoteEvent::Choke {
            timing: 0,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Wildcard,
            key: Key::Wildcard,
        };
        assert_eq!(note_action(&choke_all), Some((0, NoteAction::AllOff)));
        let bend = NoteEvent::MidiPitchBend {
            timing: 9,
            channel: 0,
            value: 1.0,
        };
        assert_eq!(note_action(&bend), Some((9, NoteAction::Bend(1.0))));
        let pedal = |value| NoteEvent::MidiCC {
            timing: 3,
            channel: 0,
            cc: 64,
            value,
        };
        assert_eq!(
            note_action(&pedal(1.0)),
            Some((3, NoteAction::Sustain(true)))
        );
        assert_eq!(
            note_action(&pedal(0.2)),
            Some((3, NoteAction::Sustain(false)))
        );
    }
}
