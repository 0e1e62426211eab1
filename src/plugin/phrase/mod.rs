//! Continuo Phrase: a note effect that listens to what is played on its track, in host beats,
//! and plays continuations from a token model as sample-accurate MIDI out. With Thru on, what
//! it receives (notes, CCs, pitch bend, pressure, program changes) passes to the output at its
//! own sample, merged in time order with the generated notes.
//!
//! It also listens to audio (Listen = Audio or MIDI + Audio): its audio input passes through
//! untouched (no latency) and a monophonic note tracker on the worker turns it into notes for the
//! same history, so a singer or a wind player can be continued; with Audio to MIDI on, those
//! notes are also sent out as MIDI as soon as they are heard.

mod params;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;

pub use params::{model_choice, KeyLockParam, PhraseParams, TriggerParam};
use params::{MODEL_ID, MODEL_NAME_KEY};

use crate::dsp::sanitize_sample;
use crate::editor::phrase::{PhraseEditor, SharedSlot};
use crate::editor::SizedEditor;
use crate::engine::worker::WorkerHandle;
use crate::model::{BackendChoice, ModelDirs};
use crate::phrase::engine::{
    self, ModelShelf, ModelSource, PhraseCommand, PhraseRealtime, PhraseRequest, PhraseShared,
    TransportInfo, HEARD_CHANNEL,
};
use crate::phrase::generate::GenerationSettings;
use crate::phrase::metre::Metre;
use crate::phrase::player::{NoteOut, SoundingNote};
use crate::phrase::roll::RollFeed;
use crate::phrase::trigger::{TriggerInput, TriggerState};
use crate::plugin::host_timing;

/// Input events passed through per block (more are dropped and counted).
const THRU_CAPACITY: usize = 1024;

/// The running engine; dropping it stops and joins the worker.
struct Running {
    engine: PhraseRealtime,
    shared: Arc<PhraseShared>,
    triggers: TriggerState,
    /// Variation the player was last told to play (0-based).
    selected: u8,
    /// Model choice the worker was last asked for.
    model: usize,
    /// This block's input events for thru, in input order (capacity fixed at activation).
    thru: Vec<PluginNoteEvent<ContinuoPhrase>>,
    /// Input notes passed through and not yet released, by channel and pitch: their note-offs
    /// pass even when Thru has been switched off since.
    thru_sounding: Box<[[bool; 128]; 16]>,
    /// The heard note sent out as MIDI and not yet released.
    heard_sounding: Option<u8>,
    was_bypassed: bool,
    _worker: WorkerHandle<PhraseCommand>,
}

/// The Continuo Phrase plugin.
pub struct ContinuoPhrase {
    params: Arc<PhraseParams>,
    /// The engine the editor reports on, its piano roll and its Generate button.
    editor_shared: SharedSlot,
    roll: Arc<RollFeed>,
    /// The continuation model kept between activations.
    model_shelf: ModelShelf,
    generate_clicked: Arc<AtomicBool>,
    /// Present between `activate` and `deactivate`.
    running: Option<Running>,
    /// Generated notes that were sounding at deactivation: the next activation's first block
    /// sends their note-offs.
    left_sounding: Vec<SoundingNote>,
    /// Whether the host's layout has an audio input (passed through and listened to); without
    /// one the output is silence.
    audio_input: bool,
}

impl Default for ContinuoPhrase {
    fn default() -> Self {
        let roll = Arc::new(RollFeed::default());
        roll.set_open(crate::editor::feeds_forced_open());
        Self {
            params: Arc::default(),
            editor_shared: SharedSlot::default(),
            roll,
            model_shelf: ModelShelf::default(),
            generate_clicked: Arc::default(),
            running: None,
            left_sounding: Vec::new(),
            audio_input: false,
        }
    }
}

impl Plugin for ContinuoPhrase {
    const NAME: &'static str = "Continuo Phrase";
    const VENDOR: &'static str = super::VENDOR;
    const URL: &'static str = super::URL;
    const EMAIL: &'static str = super::EMAIL;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    // Stereo in and out first: the track's audio passes through unchanged and can be listened
    // to, and VST3 hosts (and several CLAP hosts) only run plugins that have an audio output.
    // Then a silent output without input, and no ports for hosts with pure note effects.
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout::const_default(),
    ];
    // MidiCCs, not Basic: otherwise the host never hands over CCs, pitch bend, channel pressure
    // or program changes, and thru could not pass them on.
    const MIDI_INPUT: MidiConfig = MidiConfig::MidiCCs;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::MidiCCs;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = SizedEditor<PhraseEditor>;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        let (params, shared, roll, generate) = (
            self.params.clone(),
            self.editor_shared.clone(),
            self.roll.clone(),
            self.generate_clicked.clone(),
        );
        let view = move || {
            let dirs = ModelDirs::standard(&[]);
            PhraseEditor::new(
                params.clone(),
                shared.clone(),
                roll.clone(),
                generate.clone(),
                dirs,
            )
        };
        let size = self.params.editor_size.clone();
        Some(SizedEditor::new(size, (640.0, 560.0), Self::NAME, view))
    }

    fn filter_state(state: &mut PluginState) {
        model_choice().restore(state, MODEL_ID, MODEL_NAME_KEY, "Continuo Phrase");
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.stop_engine();
        self.audio_input = audio_io_layout.main_input_channels.is_some();
        let initial = self.chosen_model_index();
        let model = ModelSource {
            choices: model_choice().list().to_vec(),
            initial,
            dirs: ModelDirs::standard(&[]),
            backend: BackendChoice::Auto,
            shelf: self.model_shelf.clone(),
        };
        let report = Box::new(|status: &str| nice_log!("Continuo Phrase: {status}"));
        match engine::start(
            buffer_config.sample_rate,
            self.history_beats(4.0),
            model,
            self.roll.clone(),
            report,
        ) {
            Ok((mut engine, worker, shared)) => {
                if let Ok(mut slot) = self.editor_shared.lock() {
                    *slot = Some(shared.clone());
                }
                engine.adopt_sounding(self.left_sounding.drain(..));
                // A bounce waits for each continuation, so it never loses notes to a slow
                // machine (CLAP's render extension and VST3's setupProcessing say which).
                engine.set_timing(host_timing(buffer_config.process_mode));
                self.running = Some(Running {
                    engine,
                    shared,
                    triggers: TriggerState::default(),
                    selected: self.selected_variation(),
                    model: initial,
                    thru: Vec::with_capacity(THRU_CAPACITY),
                    thru_sounding: Box::new([[false; 128]; 16]),
                    heard_sounding: None,
                    was_bypassed: false,
                    _worker: worker,
                });
                true
            }
            Err(_) => false,
        }
    }

    fn reset(&mut self) {
        if let Some(running) = &mut self.running {
            running.engine.release_all(0);
        }
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        for channel in buffer.as_slice() {
            if self.audio_input {
                // Passed through untouched, except that garbage (NaN, infinities, subnormals)
                // does not leave the plugin.
                channel.iter_mut().for_each(|x| *x = sanitize_sample(*x));
            } else {
                channel.fill(0.0);
            }
        }
        let block_len = buffer.samples() as u32;
        let transport = context.transport();
        let beats_per_bar = beats_per_bar(transport);
        let info = TransportInfo {
            playing: transport.playing,
            tempo_bpm: transport.tempo,
            pos_beats: transport.pos_beats(),
        };
        let history_beats = self.history_beats(beats_per_bar);
        let audio_input = self.audio_input;
        let selected = self.selected_variation();
        let model = self.chosen_model_index();
        let params = &self.params;
        let Some(running) = &mut self.running else {
            return ProcessStatus::Normal;
        };
        running
            .shared
            .history_beats
            .store(history_beats, Ordering::Relaxed);
        running.engine.begin_block(info, block_len as usize);
        self.roll
            .set_playhead(running.engine.beat_at(0), beats_per_bar);

        let bypassed = params.bypass.value();
        if bypassed && !running.was_bypassed {
            running.engine.release_all(0);
            if let Some(pitch) = running.heard_sounding.take() {
                send_in_time_order(&mut running.thru, heard_event(false, pitch, 0.0, 0));
            }
        }
        running.was_bypassed = bypassed;

        let listen = params.listen.value();
        if audio_input && listen.audio() && !bypassed {
            running.engine.listen(buffer.as_slice());
        } else {
            running.engine.listen_to_nothing(block_len as usize);
        }
        capture_input(
            running,
            context,
            params.thru.value() || bypassed,
            bypassed || !listen.midi(),
        );
        take_heard(running, block_len, bypassed, params.heard_out.value());
        // Before any Generate of this block, so that it uses the new model. A full request
        // queue leaves `running.model` as it was: the switch is retried next block.
        if model != running.model
            && running.engine.request(PhraseRequest::Model {
                index: model as u16,
            })
        {
            running.model = model;
        }
        if !bypassed {
            let clicked = self.generate_clicked.swap(false, Ordering::Acquire);
            start_continuations(running, params, clicked, beats_per_bar, block_len, selected);
            running.engine.render(block_len);
        }
        send_output(running, context);
        ProcessStatus::Normal
    }

    /// CLAP and VST3 let a plugin send events only from `process`, so generated notes still
    /// sounding cannot be ended here (nor does nice-plug tell `process` which call is the last).
    /// They are kept, and their note-offs go out with the first block after the next
    /// activation. In between, what the instrument fed by this effect does with them is up to
    /// the host, which owns the event routing it just stopped. While the plugin keeps
    /// processing, every note-on it sent gets its note-off.
    fn deactivate(&mut self) {
        self.stop_engine();
        if let Ok(mut slot) = self.editor_shared.lock() {
            *slot = None;
        }
    }
}

impl ContinuoPhrase {
    /// Stops the engine (joining its worker), keeping the notes it left sounding.
    fn stop_engine(&mut self) {
        if let Some(mut running) = self.running.take() {
            self.left_sounding.extend(running.engine.take_sounding());
            if let Some(pitch) = running.heard_sounding {
                self.left_sounding.push(SoundingNote {
                    channel: HEARD_CHANNEL,
                    pitch,
                });
            }
        }
    }

    fn history_beats(&self, beats_per_bar: f64) -> f64 {
        f64::from(self.params.history_bars.value()) * beats_per_bar
    }

    fn selected_variation(&self) -> u8 {
        (self.params.variation.value() - 1).clamp(0, 7) as u8
    }

    fn chosen_model_index(&self) -> usize {
        model_choice().index(self.params.model.value()).unwrap_or(0)
    }
}

/// Quarter notes per bar from the host's time signature (4/4 when unknown), as [`Metre`]
/// bounds it.
fn beats_per_bar(transport: &Transport) -> f64 {
    match (transport.time_sig_numerator, transport.time_sig_denominator) {
        (Some(numerator), Some(denominator)) => {
            Metre::from_time_signature(numerator, denominator).bar_beats()
        }
        _ => Metre::default().bar_beats(),
    }
}

/// Records incoming notes (history and triggers, unless `ignore_notes`) and keeps the events
/// thru passes on.
fn capture_input(
    running: &mut Running,
    context: &mut impl ProcessContext<ContinuoPhrase>,
    thru: bool,
    ignore_notes: bool,
) {
    while let Some(event) = context.next_event() {
        let note = match event {
            NoteEvent::NoteOn {
                timing,
                channel,
                key,
                velocity,
                ..
            } => Some((timing, true, channel, key, velocity)),
            NoteEvent::NoteOff {
                timing,
                channel,
                key,
                velocity,
                ..
            } => Some((timing, false, channel, key, velocity)),
            _ => None,
        };
        if let Some((timing, on, channel, key, velocity)) = note {
            let (Some(channel), Some(pitch)) = (channel.number(), key.number()) else {
                continue;
            };
            if !ignore_notes {
                running.engine.capture(timing, on, channel, pitch, velocity);
                let beat = running.engine.beat_at(timing);
                running.triggers.note(on, beat);
            }
        }
        if thru_passes(&mut running.thru_sounding, &event, thru) {
            if running.thru.len() < running.thru.capacity() {
                running.thru.push(event);
            } else {
                running.engine.count_dropped(1);
            }
        }
    }
}

/// Takes the notes heard in the audio input: they count for the triggers (unless bypassed)
/// and, with Audio to MIDI on, go out as MIDI where they were decided (every note-on sent gets
/// its note-off, whatever the parameter says by then).
fn take_heard(running: &mut Running, block_len: u32, bypassed: bool, heard_out: bool) {
    let (triggers, thru, sounding) = (
        &mut running.triggers,
        &mut running.thru,
        &mut running.heard_sounding,
    );
    let mut lost = 0;
    running.engine.take_heard(block_len, |note, timing| {
        if !bypassed {
            triggers.note(note.on, note.beat);
        }
        let send = if note.on {
            let send = heard_out && !bypassed && sounding.is_none();
            if send {
                *sounding = Some(note.pitch);
            }
            send
        } else {
            *sounding == Some(note.pitch) && sounding.take().is_some()
        };
        if send
            && !send_in_time_order(
                thru,
                heard_event(note.on, note.pitch, note.velocity, timing),
            )
        {
            lost += 1;
        }
    });
    if lost > 0 {
        running.engine.count_dropped(lost);
    }
}

/// A heard note as an output event.
fn heard_event(on: bool, pitch: u8, velocity: f32, timing: u32) -> PluginNoteEvent<ContinuoPhrase> {
    generated_event(NoteOut {
        timing,
        on,
        channel: HEARD_CHANNEL,
        pitch,
        velocity,
    })
}

/// Inserts `event` into the block's outgoing input events after those at or before its sample
/// (they are in time order); `false` when the list is full.
fn send_in_time_order<S>(events: &mut Vec<NoteEvent<S>>, event: NoteEvent<S>) -> bool {
    if events.len() == events.capacity() {
        return false;
    }
    let at = events.partition_point(|e| e.timing() <= event.timing());
    events.insert(at, event);
    true
}

/// Whether thru forwards `event` now. Keeps track of the input notes it passed on: the
/// note-off of one of them passes whatever Thru is set to by then (or the note would hang).
fn thru_passes<S>(sounding: &mut [[bool; 128]; 16], event: &NoteEvent<S>, thru: bool) -> bool {
    let note = match event {
        NoteEvent::NoteOn { channel, key, .. } => Some((true, channel, key)),
        NoteEvent::NoteOff { channel, key, .. } => Some((false, channel, key)),
        _ => None,
    };
    let Some((on, channel, key)) = note else {
        return thru && passes_thru(event);
    };
    let (Some(channel), Some(pitch)) = (channel.number(), key.number()) else {
        return thru;
    };
    let passed = &mut sounding[usize::from(channel & 0x0f)][usize::from(pitch & 0x7f)];
    if on {
        *passed |= thru;
        thru
    } else {
        std::mem::take(passed) || thru
    }
}

/// Whether thru forwards `event`: what a player sends, not host-side voice management or
/// modulation.
fn passes_thru<S>(event: &NoteEvent<S>) -> bool {
    matches!(
        event,
        NoteEvent::NoteOn { .. }
            | NoteEvent::NoteOff { .. }
            | NoteEvent::PolyPressure { .. }
            | NoteEvent::PolyVolume { .. }
            | NoteEvent::PolyPan { .. }
            | NoteEvent::PolyTuning { .. }
            | NoteEvent::PolyVibrato { .. }
            | NoteEvent::PolyExpression { .. }
            | NoteEvent::PolyBrightness { .. }
            | NoteEvent::MidiChannelPressure { .. }
            | NoteEvent::MidiPitchBend { .. }
            | NoteEvent::MidiCC { .. }
            | NoteEvent::MidiProgramChange { .. }
    )
}

/// Asks the worker for a continuation when a trigger fires, or for another variation.
fn start_continuations(
    running: &mut Running,
    params: &PhraseParams,
    generate_clicked: bool,
    beats_per_bar: f64,
    block_len: u32,
    selected: u8,
) {
    let block_beats = (running.engine.beat_at(0), running.engine.beat_at(block_len));
    let trigger = running.triggers.update(&TriggerInput {
        mode: params.trigger.value().into(),
        button: params.generate.value() || generate_clicked,
        block_beats,
        beats_per_bar,
        auto_beats: f64::from(params.auto_beats.value()),
        every_bars: params.every_bars.value().max(1) as u32,
    });
    if let Some(trigger_beat) = trigger {
        let density = params.density.value();
        let settings = GenerationSettings {
            bars: params.bars.value().max(1) as u32,
            beats_per_bar,
            temperature: params.temperature.value(),
            top_p: params.top_p.value(),
            density_notes_per_beat: (density > 0.0).then_some(density),
            scale: None,
            pitch_range: (
                params.pitch_low.value().clamp(0, 127) as u8,
                params.pitch_high.value().clamp(0, 127) as u8,
            ),
            velocity_scale: params.velocity_scale.value(),
            quantize_beats: params.quantize.value().beats(),
            channel: 0,
            texture: params.texture.value().into(),
            follow_input: params.follow_input.value(),
        };
        running.engine.request(PhraseRequest::Generate {
            trigger_beat,
            tempo_bpm: running.engine.tempo_bpm(),
            settings,
            key_lock: params.key_lock(),
            variations: params.variations.value().clamp(1, 8) as u8,
            selected,
        });
        running.selected = selected;
    } else if selected != running.selected {
        running.selected = selected;
        running.engine.request(PhraseRequest::Select {
            variation: selected,
        });
    }
}

/// Sends this block's events (thru and generated) to the host, in time order.
fn send_output(running: &mut Running, context: &mut impl ProcessContext<ContinuoPhrase>) {
    let mut failed = 0;
    merge_output(
        running.engine.output().drain_sorted(),
        &mut running.thru,
        |event| {
            if context.try_send_event(event).is_err() {
                failed += 1;
            }
        },
    );
    if failed > 0 {
        running.engine.count_dropped(failed);
    }
}

/// Merges the generated notes (sorted) with the thru events (emptied; kept in input order, which
/// hosts give in time order) into `send`, in time order. At one sample generated note-offs go
/// first and generated note-ons last, so a pitch both parts play is released before it is
/// struck again.
fn merge_output<S: Copy>(
    generated: impl Iterator<Item = NoteOut>,
    thru: &mut Vec<NoteEvent<S>>,
    mut send: impl FnMut(NoteEvent<S>),
) {
    let mut thru_events = thru.drain(..).peekable();
    for note in generated {
        while let Some(event) = thru_events
            .next_if(|e| e.timing() < note.timing || (e.timing() == note.timing && note.on))
        {
            send(event);
        }
        send(generated_event(note));
    }
    thru_events.for_each(send);
}

fn generated_event<S>(note: NoteOut) -> NoteEvent<S> {
    let channel = Channel::Number(note.channel);
    let key = Key::Number(note.pitch);
    if note.on {
        NoteEvent::NoteOn {
            timing: note.timing,
            voice_id: VoiceID::Wildcard,
            channel,
            key,
            velocity: note.velocity,
        }
    } else {
        NoteEvent::NoteOff {
            timing: note.timing,
            voice_id: VoiceID::Wildcard,
            channel,
            key,
            velocity: note.velocity,
        }
    }
}

impl ClapPlugin for ContinuoPhrase {
    const CLAP_ID: &'static str = "org.continuo.phrase";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Continues the phrases played on its track");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[ClapFeature::NoteEffect, ClapFeature::Utility];
}

impl Vst3Plugin for ContinuoPhrase {
    const VST3_CLASS_ID: [u8; 16] = *b"ContinuoPhrase1!";
    // Hosts only send MIDI to VST3 plugins that declare themselves instruments.
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Tools];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(timing: u32, value: f32) -> NoteEvent<()> {
        NoteEvent::MidiCC {
            timing,
            channel: 0,
            cc: 1,
            value,
        }
    }

    fn generated(timing: u32, on: bool, pitch: u8) -> NoteOut {
        NoteOut {
            timing,
            on,
            channel: 0,
            pitch,
            velocity: 0.5,
        }
    }

    #[test]
    fn thru_events_keep_their_samples_merged_with_the_generated_notes() {
        let bend = NoteEvent::MidiPitchBend {
            timing: 5,
            channel: 0,
            value: 0.75,
        };
        let thru_on = NoteEvent::NoteOn {
            timing: 10,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(60),
            velocity: 0.8,
        };
        let mut thru = Vec::with_capacity(8);
        thru.extend([cc(0, 0.1), bend, thru_on, cc(40, 0.9)]);
        let capacity = thru.capacity();
        let generated_notes = [
            generated(10, false, 60),
            generated(10, true, 64),
            generated(20, true, 67),
        ];
        let mut sent = Vec::new();
        merge_output(generated_notes.into_iter(), &mut thru, |e| sent.push(e));
        let expected: Vec<NoteEvent<()>> = vec![
            cc(0, 0.1),
            bend,
            generated_event(generated_notes[0]),
            thru_on,
            generated_event(generated_notes[1]),
            generated_event(generated_notes[2]),
            cc(40, 0.9),
        ];
        assert_eq!(sent, expected);
        assert!(
            thru.is_empty() && thru.capacity() == capacity,
            "reused, not reallocated"
        );
    }

    #[test]
    fn thru_passes_what_a_player_sends_not_host_voice_management() {
        assert!(passes_thru(&cc(0, 0.5)));
        assert!(passes_thru(&NoteEvent::<()>::MidiProgramChange {
            timing: 0,
            channel: 3,
            program: 12,
        }));
        assert!(passes_thru(&NoteEvent::<()>::MidiChannelPressure {
            timing: 0,
            channel: 0,
            pressure: 0.5,
        }));
        assert!(passes_thru(&NoteEvent::<()>::PolyPressure {
            timing: 0,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(60),
            pressure: 0.5,
        }));
        assert!(!passes_thru(&NoteEvent::<()>::VoiceTerminated {
            timing: 0,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(60),
        }));
    }

    #[test]
    fn bars_follow_the_hosts_time_signature_beyond_eight_beats() {
        let mut transport = Transport::new(48_000.0);
        assert_eq!(beats_per_bar(&transport), 4.0, "no time signature: 4/4");
        for (numerator, denominator, beats) in
            [(12, 4, 12.0), (15, 8, 7.5), (21, 8, 10.5), (32, 4, 32.0)]
        {
            transport.time_sig_numerator = Some(numerator);
            transport.time_sig_denominator = Some(denominator);
            assert_eq!(
                beats_per_bar(&transport),
                beats,
                "{numerator}/{denominator}"
            );
        }
    }

    #[test]
    fn the_note_off_of_a_note_thru_passed_passes_after_thru_is_switched_off() {
        let mut sounding = Box::new([[false; 128]; 16]);
        let on = |key| NoteEvent::<()>::NoteOn {
            timing: 0,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(key),
            velocity: 0.8,
        };
        let off = |key| NoteEvent::<()>::NoteOff {
            timing: 0,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(key),
            velocity: 0.0,
        };
        assert!(thru_passes(&mut sounding, &on(60), true));
        assert!(
            !thru_passes(&mut sounding, &on(62), false),
            "thru off: not passed"
        );
        // Thru is now off: the passed note still ends, the other one sends nothing.
        assert!(thru_passes(&mut sounding, &off(60), false));
        assert!(!thru_passes(&mut sounding, &off(62), false));
        assert!(!thru_passes(&mut sounding, &off(60), false), "only once");
        assert!(!thru_passes(&mut sounding, &cc(0, 0.5), false));
        assert!(thru_passes(&mut sounding, &cc(0, 0.5), true));
    }
}
