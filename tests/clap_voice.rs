//! Continuo Voice in a CLAP host (the built debug bundle with `assert_process_allocs`, which
//! aborts the test if `process()` allocates): notes in → sound out on the sample the latency
//! says, at several rates and block sizes; note storms, stealing, pitch bend and a model switch
//! mid-note stay finite, bounded and allocation-free.

mod clap_support;

use clack_host::events::event_types::{MidiEvent, NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clap_support::*;

fn key(k: u16) -> Pckn {
    Pckn::new(0u16, 0u16, k, Match::All)
}

#[test]
fn a_note_sounds_from_its_sample_plus_the_reported_latency() {
    let entry = load_bundle(&built_bundle());
    for (rate, block) in [
        (48_000.0, 128),
        (48_000.0, 333),
        (44_100.0, 64),
        (96_000.0, 1024),
    ] {
        let mut plugin = instance(&entry, VOICE_ID);
        // Offline (a bounce): every block waits for the worker, so the timing is exact however
        // fast this machine is.
        let processor = activate_offline(&mut plugin, rate, block as u32);
        let latency = latency(&mut plugin) as usize;
        assert!(
            latency > 0 && latency < block + rate as usize / 50,
            "{rate}/{block}: {latency}"
        );
        let (on_block, on_time) = (4, 17usize);
        let blocks = (0.6 * rate) as usize / block;
        let (processor, out) = play_voice(processor, block, blocks, |index, input| {
            if index == on_block {
                input.push(&NoteOnEvent::new(on_time as u32, key(69), 0.8));
            }
            if index == blocks / 2 {
                input.push(&NoteOffEvent::new(0, key(69), 0.0));
            }
        });
        let note_on = on_block * block + on_time;
        let first = out
            .iter()
            .position(|x| x.abs() > 1e-6)
            .expect("the note sounds");
        // The note's first frame starts on its own sample: sound from the compensated
        // note-on (the synth's ramp from silence makes the very first sample 0).
        assert!(
            first >= note_on + latency && first <= note_on + latency + 8,
            "{rate} Hz / {block}: note-on at {note_on} + latency {latency}, first sound at {first}"
        );
        eprintln!(
            "{rate} Hz, blocks of {block}: latency {latency} samples ({:.1} ms), first sound {} samples after the compensated note-on",
            1000.0 * latency as f64 / rate,
            first - note_on - latency
        );
        let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            peak > 0.01 && peak < 1.0,
            "{rate} Hz / {block}: peak {peak}"
        );
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
    // Offline, so a busy machine cannot make the worker late (a real-time miss plays dry,
    // which for an instrument is silence); the model switch is loaded by a thread that polls
    // the parameter, so the blocks after it are slowed to give it wall time to arrive.
    let processor = activate_offline(&mut plugin, rate, block as u32);
    let blocks = (3.0 * rate) as usize / block;
    let (processor, out) = play_voice(processor, block, blocks, |index, input| {
        if (100..160).contains(&index) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
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

/// A host that renders faster than real time but says it runs live (DawDreamer does): with
/// Offline Render at Always, Voice waits for its worker and plays what an offline render plays.
#[test]
fn offline_render_always_waits_even_when_the_host_says_live() {
    let entry = load_bundle(&built_bundle());
    let (rate, block) = (48_000.0, 128);
    let blocks = (0.5 * rate) as usize / block;
    let notes = |index: usize, input: &mut EventBuffer| match index {
        4 => input.push(&NoteOnEvent::new(17, key(69), 0.8)),
        100 => input.push(&NoteOffEvent::new(0, key(69), 0.0)),
        _ => {}
    };

    let mut plugin = instance(&entry, VOICE_ID);
    let processor = activate_offline(&mut plugin, rate, block as u32);
    let (processor, offline) = play_voice(processor, block, blocks, notes);
    plugin.deactivate(processor);

    let mut plugin = instance(&entry, VOICE_ID);
    let always = param_id(&mut plugin, "Offline Render");
    let config = PluginAudioConfiguration {
        sample_rate: rate,
        min_frames_count: 1,
        max_frames_count: block as u32,
    };
    // No render extension call: the host leaves the plugin in real-time mode.
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let (processor, live) = play_voice(processor, block, blocks, |index, input| {
        if index == 0 {
            input.push(&ParamValueEvent::new(0, always, Pckn::match_all(), 1.0));
        }
        notes(index, input);
    });
    plugin.deactivate(processor);

    let peak = offline.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let difference = offline
        .iter()
        .zip(&live)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        peak > 0.01,
        "the offline render plays the note (peak {peak})"
    );
    assert!(
        difference < 1e-6,
        "played as fast as possible in real-time mode with Offline Render at Always, Voice \
         matches the offline render (max difference {difference}, peak {peak})"
    );
}
