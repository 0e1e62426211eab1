//! Continuo Phrase listening to audio in a real CLAP host (clack-host), on the built bundle
//! (debug, `assert_process_allocs`: an allocation in `process()` aborts this test) with its
//! bundled default model.
//!
//! A melody of harmonic tones with rests is played into the audio input at 120 BPM, rendered
//! offline (CLAP's render extension) at 48 and 44.1 kHz in blocks of odd sizes. With Listen =
//! Audio and Audio to MIDI on: the audio passes through sample for sample; every tone comes out
//! as a MIDI note on channel 1 with its pitch, its note-on at most 45 ms after the tone starts
//! (the sample the tracker decided it at, so two renders are identical), each with its
//! note-off; Generate after the melody continues it (notes after the next bar line, none of the
//! "nothing has been played" kind). With Listen = MIDI nothing is heard.

mod clap_support;

use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::prelude::*;
use clap_support::*;

const TEMPO: f64 = 120.0;
/// (start beat, length in beats, MIDI pitch) of the melody sung into the input.
const MELODY: [(f64, f64, u8); 8] = [
    (1.0, 0.75, 60),
    (2.0, 0.75, 62),
    (3.0, 0.75, 64),
    (4.0, 0.5, 65),
    (4.5, 0.5, 67),
    (5.0, 1.5, 69),
    (7.0, 0.75, 55),
    (8.0, 0.75, 60),
];
/// Generate is pressed here; the continuation starts at the next bar line (beat 12).
const GENERATE_BEAT: f64 = 10.0;
const END_BEAT: f64 = 17.0;

/// An output note event at an absolute sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Out {
    sample: u64,
    on: bool,
    channel: u16,
    key: u16,
}

struct Session {
    audio_in: Vec<f32>,
    audio_out: Vec<f32>,
    notes: Vec<Out>,
}

/// The melody as audio: five harmonics, 5 ms fades, a little vibrato, 0.25 peak.
fn melody_audio(sample_rate: f64) -> Vec<f32> {
    let samples_per_beat = sample_rate * 60.0 / TEMPO;
    let total = (END_BEAT * samples_per_beat) as usize;
    let mut audio = vec![0.0f32; total];
    for &(start, length, pitch) in &MELODY {
        let first = (start * samples_per_beat) as usize;
        let len = (length * 0.9 * samples_per_beat) as usize;
        let f0 = 440.0 * 2f64.powf((f64::from(pitch) - 69.0) / 12.0);
        let fade = (0.005 * sample_rate) as usize;
        let mut phase = 0.0f64;
        for n in 0..len {
            let t = n as f64 / sample_rate;
            phase += std::f64::consts::TAU
                * f0
                * (1.0 + 0.003 * (std::f64::consts::TAU * 5.0 * t).sin())
                / sample_rate;
            let envelope = (n.min(len - n) as f64 / fade as f64).min(1.0);
            let wave: f64 = (1..=5).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            audio[first + n] = (0.15 * envelope * wave) as f32;
        }
    }
    audio
}

/// Renders the melody through Phrase with Listen set to `listen` (0 MIDI, 1 Audio, 2 both).
fn render(entry: &PluginEntry, sample_rate: f64, block: usize, listen: f64) -> Session {
    let mut plugin = instance(entry, PHRASE_ID);
    let params = settable_params(&mut plugin);
    let setup = [
        (by_name(&params, "Listen").id, listen),
        (by_name(&params, "Audio to MIDI").id, 1.0),
        (by_name(&params, "Bars").id, 1.0),
    ];
    let generate = by_name(&params, "Generate").id;
    let processor = activate_offline(&mut plugin, sample_rate, block as u32);
    let audio_in = melody_audio(sample_rate);
    let samples_per_beat = sample_rate * 60.0 / TEMPO;
    let (processor, audio_out, notes) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = StereoPorts::new();
                let mut audio_out = Vec::with_capacity(audio_in.len());
                let mut notes = Vec::new();
                for (index, chunk) in audio_in.chunks(block).enumerate() {
                    let first = (index * block) as u64;
                    let beat = first as f64 / samples_per_beat;
                    let block_end = (first + chunk.len() as u64) as f64 / samples_per_beat;
                    let mut input = EventBuffer::new();
                    if index == 0 {
                        for (id, value) in setup {
                            input.push(&ParamValueEvent::new(0, id, Pckn::match_all(), value));
                        }
                    }
                    if (beat..block_end).contains(&GENERATE_BEAT) {
                        input.push(&ParamValueEvent::new(0, generate, Pckn::match_all(), 1.0));
                    }
                    let mut output = EventBuffer::new();
                    let transport = transport(TEMPO, beat, true);
                    let (left, _) = ports.process_with(
                        &mut processor,
                        chunk,
                        chunk,
                        &input.as_input(),
                        &mut output,
                        Some(&transport),
                    );
                    audio_out.extend_from_slice(&left);
                    for event in output.iter() {
                        let (on, pckn, time) = if let Some(on) = event.as_event::<NoteOnEvent>() {
                            (true, on.pckn(), on.header().time())
                        } else if let Some(off) = event.as_event::<NoteOffEvent>() {
                            (false, off.pckn(), off.header().time())
                        } else {
                            continue;
                        };
                        notes.push(Out {
                            sample: first + u64::from(time),
                            on,
                            channel: pckn.channel.into_specific().unwrap_or(99),
                            key: pckn.key.into_specific().unwrap_or(999),
                        });
                    }
                }
                (processor.stop_processing(), audio_out, notes)
            })
            .join()
            .expect("audio thread")
    });
    plugin.deactivate(processor);
    Session {
        audio_in,
        audio_out,
        notes,
    }
}

#[test]
fn phrase_turns_its_audio_input_into_notes_and_continues_them() {
    let entry = load_bundle(&built_bundle());
    for (sample_rate, block) in [(48_000.0, 256), (44_100.0, 333)] {
        let session = render(&entry, sample_rate, block, 1.0);
        assert_eq!(
            session.audio_out, session.audio_in,
            "{sample_rate} Hz: the audio passes through unchanged"
        );
        let samples_per_beat = sample_rate * 60.0 / TEMPO;
        let melody_end = (9.0 * samples_per_beat) as u64;
        let (heard, generated): (Vec<Out>, Vec<Out>) =
            session.notes.iter().partition(|n| n.sample < melody_end);
        let heard_ons: Vec<&Out> = heard.iter().filter(|n| n.on).collect();
        assert_eq!(
            heard_ons.iter().map(|n| n.key).collect::<Vec<_>>(),
            MELODY
                .iter()
                .map(|&(_, _, p)| u16::from(p))
                .collect::<Vec<_>>(),
            "{sample_rate} Hz: every tone heard, at its pitch: {heard:?}"
        );
        for (note, &(start, _, _)) in heard_ons.iter().zip(&MELODY) {
            let onset = start * samples_per_beat;
            let delay_ms = (note.sample as f64 - onset) / sample_rate * 1000.0;
            assert!(
                (0.0..=45.0).contains(&delay_ms) && note.channel == 0,
                "{sample_rate} Hz: note {note:?} sent {delay_ms:.1} ms after its onset"
            );
        }
        for on in &heard_ons {
            assert!(
                heard
                    .iter()
                    .any(|off| !off.on && off.key == on.key && off.sample > on.sample),
                "{sample_rate} Hz: {on:?} has its note-off"
            );
        }
        let continuation_start = (12.0 * samples_per_beat) as u64;
        assert!(
            generated.iter().any(|n| n.on),
            "{sample_rate} Hz: Generate continued the sung melody"
        );
        assert!(
            generated
                .iter()
                .filter(|n| n.on)
                .all(|n| n.sample + 1 >= continuation_start),
            "{sample_rate} Hz: the continuation starts at the next bar: {generated:?}"
        );
        let again = render(&entry, sample_rate, block, 1.0);
        assert_eq!(
            again.notes, session.notes,
            "{sample_rate} Hz: an offline render is repeatable to the sample"
        );
    }
}

#[test]
fn phrase_listening_to_midi_ignores_the_audio() {
    let entry = load_bundle(&built_bundle());
    let session = render(&entry, 48_000.0, 512, 0.0);
    assert_eq!(session.audio_out, session.audio_in);
    assert!(
        session.notes.is_empty(),
        "with nothing played, Generate has nothing to continue: {:?}",
        session.notes
    );
}
