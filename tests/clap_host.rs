//! Loads the *built* `Continuo.clap` bundle in a small CLAP host (clack-host) and drives both
//! plugins as a DAW would: list, instantiate, activate, process blocks of many sizes, change
//! parameters, send notes and read note output.
//!
//! `.ci/run` builds the bundle in debug with `assert_process_allocs`, so any allocation inside
//! either plugin's `process()` aborts this test process.

use clack_extensions::latency::PluginLatency;
use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;

mod clap_support;
use clap_support::*;

#[test]
fn bundle_lists_both_plugins() {
    let entry = load_bundle(&built_bundle());
    let factory = entry.get_plugin_factory().expect("plugin factory");
    let ids: Vec<String> = factory
        .plugin_descriptors()
        .filter_map(|descriptor| descriptor.id().map(|id| id.to_string_lossy().into_owned()))
        .collect();
    assert!(ids.contains(&"org.continuo.style".to_owned()), "{ids:?}");
    assert!(ids.contains(&"org.continuo.phrase".to_owned()), "{ids:?}");
}

#[test]
fn style_processes_audio_and_follows_parameters_at_many_block_sizes() {
    let entry = load_bundle(&built_bundle());
    for (sample_rate, max_block) in [(44_100.0, 64u32), (48_000.0, 512), (96_000.0, 4096)] {
        let mut plugin = instance(&entry, STYLE_ID);
        let mix = param_id(&mut plugin, "Mix");
        let config = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_block,
        };
        let processor = plugin.activate(|_, _| (), config).expect("activate");
        let latency = {
            let handle = plugin.plugin_handle();
            let latency: PluginLatency = handle.get_extension().expect("latency extension");
            latency.get(&handle) as usize
        };
        assert!(latency > 0, "Style reports its latency");

        // An impulse train through the plugin with Mix = 0 must come out exactly `latency`
        // samples later: the dry path is delayed by the reported latency.
        // The mix parameter smooths over 20 ms from its default (1) to 0; skip that stretch.
        let settle = latency + (0.05 * sample_rate) as usize;
        let total = settle + 8 * max_block as usize + 2000;
        let input: Vec<f32> = (0..total)
            .map(|n| if n % 997 == 3 { 1.0 } else { 0.0 })
            .collect();
        let mut output = vec![0.0f32; total];
        let processor = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut processor = processor.start_processing().expect("start processing");
                    let mut ports = StereoPorts::new();
                    let mut offset = 0;
                    let mut block_index = 0usize;
                    // Block sizes vary, as hosts do: 1, 7, 64, …, up to the maximum.
                    let sizes = [1usize, 7, 64, 13, max_block as usize, 3, 128];
                    while offset < total {
                        let len = sizes[block_index % sizes.len()]
                            .min(max_block as usize)
                            .min(total - offset);
                        let block = &input[offset..offset + len];
                        let events: Vec<ParamValueEvent> = if block_index == 0 {
                            vec![ParamValueEvent::new(0, mix, Pckn::match_all(), 0.0)]
                        } else {
                            Vec::new()
                        };
                        let (left_out, right_out) = ports.process(
                            &mut processor,
                            block,
                            block,
                            &InputEvents::from_buffer(&events),
                        );
                        output[offset..offset + len].copy_from_slice(&left_out);
                        assert!(right_out.iter().all(|s| s.is_finite()));
                        offset += len;
                        block_index += 1;
                    }
                    processor.stop_processing()
                })
                .join()
                .expect("audio thread")
        });
        plugin.deactivate(processor);

        for n in settle..total {
            let expected = input[n - latency];
            assert!(
                (output[n] - expected).abs() < 1e-6,
                "{sample_rate} Hz: sample {n}: {} vs {expected}",
                output[n]
            );
        }
        assert!(output[settle..].contains(&1.0), "the impulses came through");
    }
}

#[test]
fn phrase_passes_notes_through_and_obeys_thru() {
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, PHRASE_ID);
    let thru = param_id(&mut plugin, "Thru");
    let config = PluginAudioConfiguration {
        sample_rate: 48_000.0,
        min_frames_count: 1,
        max_frames_count: 256,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let (processor, passed, after_thru_off) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut output_ports = AudioPorts::with_capacity(2, 1);
                let mut run_block = |events: &[&dyn AsRef<UnknownEvent>],
                                     beat: f64|
                 -> Vec<(u32, bool, u16)> {
                    let mut input = EventBuffer::new();
                    for event in events {
                        input.push(*event);
                    }
                    let mut output_buffer = EventBuffer::new();
                    let mut left = vec![1.0f32; 256];
                    let mut right = vec![1.0f32; 256];
                    {
                        let mut output_events = OutputEvents::from_buffer(&mut output_buffer);
                        let mut audio_out = output_ports.with_output_buffers([AudioPortBuffer {
                            latency: 0,
                            channels: AudioPortBufferType::f32_output_only(
                                [left.as_mut_slice(), right.as_mut_slice()].into_iter(),
                            ),
                        }]);
                        let transport = transport(120.0, beat, true);
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
                    assert!(
                        left.iter().chain(&right).all(|&s| s == 0.0),
                        "Phrase outputs silence"
                    );
                    output_buffer
                        .iter()
                        .filter_map(|event| {
                            if let Some(on) = event.as_event::<NoteOnEvent>() {
                                Some((
                                    on.header().time(),
                                    true,
                                    on.pckn().key.into_specific().unwrap_or(999),
                                ))
                            } else {
                                event.as_event::<NoteOffEvent>().map(|off| {
                                    (
                                        off.header().time(),
                                        false,
                                        off.pckn().key.into_specific().unwrap_or(999),
                                    )
                                })
                            }
                        })
                        .collect()
                };
                let note_on = NoteOnEvent::new(10, Pckn::new(0u16, 0u16, 60u16, Match::All), 0.8);
                let note_off =
                    NoteOffEvent::new(200, Pckn::new(0u16, 0u16, 60u16, Match::All), 0.0);
                let mut passed = run_block(&[&note_on, &note_off], 0.0);
                for block in 1..50 {
                    passed.extend(run_block(&[], block as f64 * 256.0 / 24_000.0));
                }
                let thru_off = ParamValueEvent::new(0, thru, Pckn::match_all(), 0.0);
                let note_on = NoteOnEvent::new(20, Pckn::new(0u16, 0u16, 64u16, Match::All), 0.8);
                let after_thru_off = run_block(&[&thru_off, &note_on], 2.0);
                (processor.stop_processing(), passed, after_thru_off)
            })
            .join()
            .expect("audio thread")
    });
    plugin.deactivate(processor);
    assert_eq!(
        passed,
        vec![(10, true, 60), (200, false, 60)],
        "notes pass through at their sample offsets"
    );
    assert!(
        after_thru_off.is_empty(),
        "Thru off: nothing is passed, got {after_thru_off:?}"
    );
}
