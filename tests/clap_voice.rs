//! Continuo Voice in a CLAP host (the built debug bundle with `assert_process_allocs`, which
//! aborts the test if `process()` allocates): notes in → sound out on the sample the latency
//! says, at several rates and block sizes; note storms, stealing, pitch bend and a model switch
//! mid-note stay finite, bounded and allocation-free.

mod clap_support;

use std::time::{Duration, Instant};

use clack_host::events::event_types::{MidiEvent, NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clap_support::*;

/// Plays `blocks` blocks of `block` samples through a started Voice on an audio thread,
/// `events(block_index, buffer)` filling each block's input events; returns the left output.
/// With `pace_at = Some(rate)` the blocks come no faster than real time, as from a sound card
/// (a real-time activation never waits for its worker).
fn play_voice(
    processor: StoppedPluginAudioProcessor<()>,
    block: usize,
    blocks: usize,
    pace_at: Option<f64>,
    events: impl Fn(usize, &mut EventBuffer) + Send,
) -> (StoppedPluginAudioProcessor<()>, Vec<f32>) {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let started = Instant::now();
                let mut processor = processor.start_processing().expect("start processing");
                let mut output_ports = AudioPorts::with_capacity(2, 1);
                let (mut left, mut right) = (vec![0.0f32; block], vec![0.0f32; block]);
                let mut output = Vec::with_capacity(block * blocks);
                for index in 0..blocks {
                    if let Some(rate) = pace_at {
                        let due = Duration::from_secs_f64((index * block) as f64 / rate);
                        std::thread::sleep(due.saturating_sub(started.elapsed()));
                    }
                    let mut input = EventBuffer::new();
                    events(index, &mut input);
                    let mut audio_out = output_ports.with_output_buffers([AudioPortBuffer {
                        latency: 0,
                        channels: AudioPortBufferType::f32_output_only(
                            [left.as_mut_slice(), right.as_mut_slice()].into_iter(),
                        ),
                    }]);
                    processor
                        .process(
                            &InputAudioBuffers::empty(),
                            &mut audio_out,
                            &input.as_input(),
                            &mut OutputEvents::void(),
                            None,
                            None,
                        )
                        .expect("process");
                    assert!(left.iter().chain(&right).all(|y| y.is_finite()));
                    assert_eq!(left, right, "both channels play the same line");
                    output.extend_from_slice(&left);
                }
                (processor.stop_processing(), output)
            })
            .join()
            .expect("audio thread")
    })
}

fn key(k: u16) -> Pckn {
    Pckn::new(0u16, 0u16, k, Match::All)
}

#[test]
fn a_note_sounds_from_its_sample_plus_the_reported_latency() {
    let entry = load_bundle(&built_bundle());
    for (rate, block) in [(48_000.0, 256), (44_100.0, 64), (96_000.0, 1024), (48_000.0, 333)] {
        let mut plugin = instance(&entry, VOICE_ID);
        // Offline (a bounce): every block waits for the worker, so the timing is exact however
        // fast this machine is.
        let processor = activate_offline(&mut plugin, rate, block as u32);
        let latency = latency(&mut plugin) as usize;
        assert!(latency > 0 && latency < block + rate as usize / 50, "{rate}/{block}: {latency}");
        let (on_block, on_time) = (4, 17usize);
        let blocks = (0.6 * rate) as usize / block;
        let (processor, out) = play_voice(processor, block, blocks, None, |index, input| {
            if index == on_block {
                input.push(&NoteOnEvent::new(on_time as u32, key(69), 0.8));
            }
            if index == blocks / 2 {
                input.push(&NoteOffEvent::new(0, key(69), 0.0));
            }
        });
        let note_on = on_block * block + on_time;
        let first = out.iter().position(|x| x.abs() > 1e-6).expect("the note sounds");
        // The first frame's synth ramps up from silence: sound begins within one frame (4 ms)
        // of the compensated note-on, never before it.
        assert!(
            first >= note_on + latency && first < note_on + latency + (0.004 * rate) as usize,
            "{rate} Hz / {block}: note-on at {note_on} + latency {latency}, first sound at {first}"
        );
        let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.01 && peak < 1.0, "{rate} Hz / {block}: peak {peak}");
        plugin.deactivate(processor);
    }
}

#[test]
fn note_storms_stealing_bend_and_a_model_switch_stay_clean() {
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, VOICE_ID);
    let style = param_id(&mut plugin, "Style");
    let rate = 48_000.0;
    let block = 256;
    let config = PluginAudioConfiguration {
        sample_rate: rate,
        min_frames_count: 1,
        max_frames_count: block as u32,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let blocks = (3.0 * rate) as usize / block;
    // In real time: the model switch is loaded by a thread that polls the parameter.
    let (processor, out) = play_voice(processor, block, blocks, Some(rate), |index, input| {
        match index {
            // 128 notes at once, spread over the block: 120 of them steal.
            10 => {
                for k in 0..128u16 {
                    input.push(&NoteOnEvent::new(u32::from(k) * 2, key(k), 0.9));
                }
            }
            // Pitch bend sweeps while they sound.
            20..=60 => {
                let value = ((index - 20) * 400) as u16;
                let data = [0xE0, (value & 0x7F) as u8, (value >> 7) as u8];
                input.push(&MidiEvent::new(0, 0, data));
            }
            // The storm ends; one long note starts and the model changes under it.
            80 => {
                for k in 0..128u16 {
                    input.push(&NoteOffEvent::new(0, key(k), 0.0));
                }
                input.push(&NoteOnEvent::new(100, key(72), 0.7));
            }
            100 => input.push(&ParamValueEvent::new(0, style, Pckn::match_all(), 1.0)),
            // Repeated notes, a velocity-0 note-on (a note-off) and MIDI all-notes-off.
            400..=430 => {
                input.push(&NoteOnEvent::new(5, key(60 + (index % 7) as u16), 0.5));
                input.push(&NoteOffEvent::new(200, key(60 + (index % 7) as u16), 0.0));
            }
            450 => input.push(&NoteOnEvent::new(0, key(64), 0.0)),
            500 => input.push(&MidiEvent::new(0, 0, [0xB0, 123, 0])),
            _ => {}
        }
    });
    let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.01 && peak < 4.0, "peak {peak}");
    // The long note carries on through the switch: no 10 ms window in it goes quiet.
    let window = 480;
    let quietest = out[110 * block..390 * block]
        .chunks(window)
        .map(|w| w.iter().map(|x| x * x).sum::<f32>() / window as f32)
        .fold(f32::MAX, f32::min);
    assert!(10.0 * quietest.log10() > -45.0, "dropout: {quietest}");
    plugin.deactivate(processor);
}
