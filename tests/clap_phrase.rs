//! Continuo Phrase generating in a real CLAP host (clack-host), on the built bundle (debug,
//! `assert_process_allocs`: any allocation in `process()` aborts this test).
//!
//! A copy of the bundle gets generated token models: its default continuation model, a second
//! one and a broken one. At three tempi a phrase is played in with the transport running (with a
//! CC and a pitch bend among the notes), Generate is pressed, and the output is read: thru
//! passes the notes, the CC and the bend at their samples; generated notes start on the model's
//! grid (1/12 beat) at the tempo, inside the bars asked for, every note-on has its note-off, and
//! stopping the transport releases everything and silences the plugin. The second and third
//! sessions switch the Model parameter first: to the second model (loaded, then used), and to
//! the broken one (refused with the reason; the default model keeps generating). Finally the
//! last session's output is played by Continuo Voice from the same bundle (the Phrase → Voice
//! chain of one track): every note it sent sounds.

mod clap_support;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use clack_host::events::event_types::{MidiEvent, NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clap_support::*;

const SAMPLE_RATE: f64 = 48_000.0;
const BLOCK: u32 = 256;

/// Puts random token-step models in the copied bundle: `continuo-chorales` (the default),
/// `second`, and `third-broken`, whose ONNX file does not match its manifest's hash.
fn install_test_models(data_dir: &Path) {
    let models = data_dir.join("models");
    std::fs::create_dir_all(&models).expect("models dir");
    common::random_continuation_model(&models, "continuo-chorales", 11, 32);
    common::random_continuation_model(&models, "second", 12, 32);
    common::random_continuation_model(&models, "third-broken", 13, 32);
    std::fs::write(models.join("third-broken.onnx"), b"not onnx").expect("corrupt");
}

/// Model parameter values: the list is `auto`, the two shipped names (`continuo-folk` is not
/// in this bundle), then the others by name.
const AUTO: f64 = 0.0;
const SECOND: f64 = 3.0;
const BROKEN: f64 = 4.0;

/// Thru input besides the notes: (beat, MIDI bytes) of a mod-wheel CC and a pitch bend.
const THRU_MIDI: [(f64, [u8; 3]); 2] = [(1.0, [0xB0, 1, 64]), (1.25, [0xE0, 0, 64])];

fn log_count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn wait_for_count(log: &Path, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_count(log, needle) < count {
        assert!(
            Instant::now() < deadline,
            "`{needle}` did not appear in the log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An output note event at an absolute sample position.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Out {
    sample: u64,
    on: bool,
    key: u16,
}

/// What a session sent out.
struct Output {
    notes: Vec<Out>,
    /// Other MIDI events: (absolute sample, bytes).
    midi: Vec<(u64, [u8; 3])>,
    /// Where the transport stopped.
    stop_sample: u64,
}

/// Plays a phrase at `tempo` with the Model parameter set to `model` ([`AUTO`] = default) in the
/// first block, presses Generate, and returns what came out.
fn session(entry: &PluginEntry, tempo: f64, model: f64, log: &Path) -> Output {
    let mut plugin = instance(entry, PHRASE_ID);
    let ready_before = log_count(log, "continuation model");
    let generate = param_id(&mut plugin, "Generate");
    let bars = param_id(&mut plugin, "Bars");
    let model_param = param_id(&mut plugin, "Model");
    assert_eq!(
        param_text(&mut plugin, model_param, SECOND),
        "second",
        "Model shows model names"
    );
    let config = PluginAudioConfiguration {
        sample_rate: SAMPLE_RATE,
        min_frames_count: 1,
        max_frames_count: BLOCK,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    // The worker loads the model after activation; a musician would not press Generate in
    // the first milliseconds either.
    wait_for_count(log, "continuation model", ready_before + 1);
    assert!(
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("ready"),
        "model loaded"
    );
    let samples_per_beat = SAMPLE_RATE * 60.0 / tempo;
    let sample_of_beat = |beat: f64| (beat * samples_per_beat).round() as u64;
    // The transport stops in the middle of the continuation (beats 12–20).
    let stop_beat = 16.0;

    let (processor, events, midi) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut output_ports = AudioPorts::with_capacity(2, 1);
                let mut left = vec![0.0f32; BLOCK as usize];
                let mut right = vec![0.0f32; BLOCK as usize];
                let mut events = Vec::new();
                let mut midi = Vec::new();
                // Input: an arpeggio of eighth notes over the first two bars.
                let melody = [
                    60u16, 64, 67, 72, 67, 64, 60, 55, 57, 60, 64, 69, 64, 60, 57, 52,
                ];
                let mut sample: u64 = 0;
                let mut pressed = false;
                let mut waited = false;
                while sample < sample_of_beat(stop_beat + 4.0) {
                    let beat = sample as f64 / samples_per_beat;
                    let block_end = sample + u64::from(BLOCK);
                    let playing = beat < stop_beat;
                    let mut input = EventBuffer::new();
                    if sample == 0 {
                        input.push(&ParamValueEvent::new(0, bars, Pckn::match_all(), 2.0));
                        if model > 0.0 {
                            input.push(&ParamValueEvent::new(
                                0,
                                model_param,
                                Pckn::match_all(),
                                model,
                            ));
                        }
                    }
                    let mut block_midi: Vec<(u64, [u8; 3])> = THRU_MIDI
                        .iter()
                        .map(|&(at_beat, data)| (sample_of_beat(at_beat), data))
                        .filter(|(at, _)| (sample..block_end).contains(at))
                        .collect();
                    for (index, &key) in melody.iter().enumerate() {
                        for (at_beat, on) in [
                            (index as f64 * 0.5, true),
                            (index as f64 * 0.5 + 0.4, false),
                        ] {
                            let at = sample_of_beat(at_beat);
                            if (sample..block_end).contains(&at) {
                                let time = (at - sample) as u32;
                                // Events go in time order: other MIDI due first goes first.
                                while let Some(&(midi_at, data)) = block_midi.first() {
                                    if midi_at > at {
                                        break;
                                    }
                                    input.push(&MidiEvent::new((midi_at - sample) as u32, 0, data));
                                    block_midi.remove(0);
                                }
                                let pckn = Pckn::new(0u16, 0u16, key, Match::All);
                                if on {
                                    input.push(&NoteOnEvent::new(time, pckn, 0.8));
                                } else {
                                    input.push(&NoteOffEvent::new(time, pckn, 0.0));
                                }
                            }
                        }
                    }
                    for (at, data) in block_midi {
                        input.push(&MidiEvent::new((at - sample) as u32, 0, data));
                    }
                    if !pressed && beat >= 8.5 {
                        input.push(&ParamValueEvent::new(0, generate, Pckn::match_all(), 1.0));
                        pressed = true;
                    }
                    let mut output = EventBuffer::new();
                    {
                        let mut output_events = OutputEvents::from_buffer(&mut output);
                        let mut audio_out = output_ports.with_output_buffers([AudioPortBuffer {
                            latency: 0,
                            channels: AudioPortBufferType::f32_output_only(
                                [left.as_mut_slice(), right.as_mut_slice()].into_iter(),
                            ),
                        }]);
                        let transport = transport(tempo, beat, playing);
                        processor
                            .process(
                                &InputAudioBuffers::empty(),
                                &mut audio_out,
                                &input.as_input(),
                                &mut output_events,
                                None,
                                Some(&transport),
                            )
                            .expect("process");
                    }
                    for event in output.iter() {
                        if let Some(on) = event.as_event::<NoteOnEvent>() {
                            let key = on.pckn().key.into_specific().unwrap_or(999);
                            events.push(Out {
                                sample: sample + u64::from(on.header().time()),
                                on: true,
                                key,
                            });
                        } else if let Some(off) = event.as_event::<NoteOffEvent>() {
                            let key = off.pckn().key.into_specific().unwrap_or(999);
                            events.push(Out {
                                sample: sample + u64::from(off.header().time()),
                                on: false,
                                key,
                            });
                        } else if let Some(other) = event.as_event::<MidiEvent>() {
                            midi.push((sample + u64::from(other.header().time()), other.data()));
                        }
                    }
                    // A real host would take seconds to reach the continuation's bar; this one
                    // is faster than real time, so it gives the worker that time once.
                    if pressed && !waited {
                        std::thread::sleep(Duration::from_millis(500));
                        waited = true;
                    }
                    sample = block_end;
                }
                (processor.stop_processing(), events, midi)
            })
            .join()
            .expect("audio thread")
    });
    plugin.deactivate(processor);
    Output {
        notes: events,
        midi,
        stop_sample: sample_of_beat(stop_beat),
    }
}

#[test]
fn phrase_generates_on_the_tempo_grid_and_releases_every_note() {
    std::env::remove_var("ORT_DYLIB_PATH");
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = copy_bundle(dir.path(), "PhraseTest", true);
    install_test_models(&dir.path().join("Continuo-data"));
    // Voice's model, for the chain at the end (scanned once, when the bundle is loaded).
    let models = dir.path().join("Continuo-data/models");
    for file in ["continuo-violin.json", "continuo-violin.onnx"] {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(file);
        std::fs::copy(shipped, models.join(file)).expect("copy the violin model");
    }
    let log = dir.path().join("phrase.log");
    std::env::set_var("NICE_LOG", &log);
    let entry = load_bundle(&bundle);

    let mut chain = Vec::new();
    for (tempo, model) in [(90.0, AUTO), (140.0, SECOND), (120.0, BROKEN)] {
        let output = session(&entry, tempo, model, &log);
        chain.clone_from(&output.notes);
        let (events, stop_sample) = (output.notes, output.stop_sample);
        let samples_per_beat = SAMPLE_RATE * 60.0 / tempo;
        let thru_midi: Vec<(u64, [u8; 3])> = THRU_MIDI
            .iter()
            .map(|&(beat, data)| ((beat * samples_per_beat).round() as u64, data))
            .collect();
        assert_eq!(
            output.midi, thru_midi,
            "{tempo} BPM: CC and bend pass through"
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if model == AUTO {
            // No `continuo-folk` in this bundle: the chorale model answers the melody alone.
            assert!(
                text.contains("continuo-chorales.json ready; the other texture's model is missing"),
                "auto with one model: {text}"
            );
        }
        if model == SECOND {
            assert!(text.contains("second.json ready"), "switched: {text}");
        }
        if model == BROKEN {
            assert!(
                text.contains("`third-broken` not loaded, keeping")
                    && text.contains("third-broken.onnx"),
                "refused with the reason: {text}"
            );
        }
        let input_keys = [
            60u16, 64, 67, 72, 67, 64, 60, 55, 57, 60, 64, 69, 64, 60, 57, 52,
        ];
        let thru_end = (8.0 * samples_per_beat) as u64;
        let (thru, generated): (Vec<Out>, Vec<Out>) =
            events.iter().partition(|e| e.sample < thru_end);
        assert_eq!(
            thru.iter().filter(|e| e.on).count(),
            input_keys.len(),
            "{tempo} BPM: input passes through"
        );

        // Trigger at beat 8.5 → the continuation starts at the next bar line, beat 12, and
        // lasts the 2 bars asked for.
        let first_on = generated
            .iter()
            .find(|e| e.on)
            .unwrap_or_else(|| panic!("{tempo} BPM: nothing generated"));
        assert!(
            first_on.sample as f64 >= 12.0 * samples_per_beat - 0.5,
            "{tempo} BPM: starts at bar 4: {first_on:?}"
        );
        for event in generated.iter().filter(|e| e.on) {
            let beat = event.sample as f64 / samples_per_beat;
            assert!(
                beat < 16.0,
                "{tempo} BPM: nothing starts after the transport stopped: beat {beat}"
            );
            let grid = beat * 12.0;
            let off_grid_samples = (grid - grid.round()).abs() * samples_per_beat / 12.0;
            // The nearest sample to the grid line, whatever the tempo and however fast the
            // worker was (the host's fixed-point positions are ~1e-5 samples off).
            assert!(
                off_grid_samples <= 0.5 + 1e-3,
                "{tempo} BPM: note-on at beat {beat} is {off_grid_samples} samples off the \
                 1/12-beat grid"
            );
        }
        // Every note-on is followed by a note-off for the same key: stopping released them.
        let mut open: Vec<u16> = Vec::new();
        for event in &generated {
            if event.on {
                open.push(event.key);
            } else if let Some(index) = open.iter().position(|k| *k == event.key) {
                open.remove(index);
            }
        }
        assert!(open.is_empty(), "{tempo} BPM: hanging notes {open:?}");
        assert!(
            generated
                .iter()
                .all(|e| e.sample < stop_sample + u64::from(BLOCK)),
            "{tempo} BPM: nothing is emitted after the stop block"
        );
    }
    phrase_notes_play_through_voice(&entry, &chain);
}

/// Phrase → Voice: the notes the last session sent out (thru and continuation), fed to
/// Continuo Voice from the same bundle as a host chains the two, sound at their samples.
fn phrase_notes_play_through_voice(entry: &PluginEntry, notes: &[Out]) {
    let mut voice = instance(entry, VOICE_ID);
    let processor = activate_offline(&mut voice, SAMPLE_RATE, BLOCK);
    let latency = latency(&mut voice) as usize;
    let block = BLOCK as usize;
    let end = notes.iter().map(|n| n.sample).max().unwrap_or(0) as usize + 24_000;
    let (processor, out) = play_voice(processor, block, end / block + 1, |index, input| {
        let range = (index * block) as u64..((index + 1) * block) as u64;
        for note in notes.iter().filter(|n| range.contains(&n.sample)) {
            let time = (note.sample - range.start) as u32;
            let pckn = Pckn::new(0u16, 0u16, note.key, Match::All);
            if note.on {
                input.push(&NoteOnEvent::new(time, pckn, 0.8));
            } else {
                input.push(&NoteOffEvent::new(time, pckn, 0.0));
            }
        }
    });
    voice.deactivate(processor);
    let ons: Vec<&Out> = notes.iter().filter(|n| n.on).collect();
    assert!(ons.len() > 16, "the chain carries the continuation too");
    for on in ons {
        // 10–30 ms after the compensated note-on: inside every note's attack (notes are ≥ a
        // 1/12 beat apart, so the previous note's release is there too; it must not be silence).
        let at = on.sample as usize + latency;
        let window = &out[at + 480..at + 1440];
        let rms = (window.iter().map(|x| x * x).sum::<f32>() / window.len() as f32).sqrt();
        assert!(
            rms > 1e-3,
            "Voice is silent after Phrase's note {} at {}",
            on.key,
            on.sample
        );
    }
}
