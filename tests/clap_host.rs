//! Loads the *built* `Continuo.clap` bundle in a small CLAP host (clack-host) and drives both
//! plugins as a DAW would: list, instantiate, activate, process blocks of many sizes, change
//! parameters, send notes and read note output.
//!
//! `.ci/run` builds the bundle in debug with `assert_process_allocs`, so any allocation inside
//! either plugin's `process()` aborts this test process.

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
    let rates = [44_100.0, 48_000.0, 96_000.0];
    let blocks = [64u32, 512, 4096];
    for (sample_rate, max_block) in rates.into_iter().flat_map(|r| blocks.map(|b| (r, b))) {
        let mut plugin = instance(&entry, STYLE_ID);
        let mix = param_id(&mut plugin, "Mix");
        let config = PluginAudioConfiguration {
            sample_rate,
            min_frames_count: 1,
            max_frames_count: max_block,
        };
        let processor = plugin.activate(|_, _| (), config).expect("activate");
        let latency = latency(&mut plugin) as usize;
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
                let mut ports = StereoPorts::new();
                let silence = vec![0.0f32; 256];
                let mut run_block =
                    |events: &[&dyn AsRef<UnknownEvent>], beat: f64| -> Vec<(u32, bool, u16)> {
                        let mut input = EventBuffer::new();
                        for event in events {
                            input.push(*event);
                        }
                        let mut output_buffer = EventBuffer::new();
                        let transport = transport(120.0, beat, true);
                        // Silence in (the audio passes through), silence out: no sound of its own.
                        let (left, right) = ports.process_with(
                            &mut processor,
                            &silence,
                            &silence,
                            &input.as_input(),
                            &mut output_buffer,
                            Some(&transport),
                        );
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

/// A 220 Hz tone at −12 dBFS.
fn tone(frames: usize, sample_rate: f64) -> Vec<f32> {
    (0..frames)
        .map(|n| 0.25 * (std::f64::consts::TAU * 220.0 * n as f64 / sample_rate).sin() as f32)
        .collect()
}

fn config(sample_rate: f64, max_block: u32) -> PluginAudioConfiguration {
    PluginAudioConfiguration {
        sample_rate,
        min_frames_count: 1,
        max_frames_count: max_block,
    }
}

/// clap-validator `param-fuzz-sample-accurate`: switching Latency Mode while processing must
/// not announce a latency from `process()` (nice-plug then calls `host_latency.changed` from
/// the main thread, possibly while deactivated). Style asks for a restart, once per change,
/// and the reported latency stays the running engine's until `activate` builds the new mode.
#[test]
fn latency_mode_switch_asks_for_a_restart_and_changes_latency_only_in_activate() {
    let entry = load_bundle(&built_bundle());
    let mut plugin = recording_instance(&entry, STYLE_ID);
    let mode = param_id(&mut plugin, "Latency Mode");
    let (low, quality) = (0.0, 1.0);
    let set_mode = |value| vec![ParamValueEvent::new(0, mode, Pckn::match_all(), value)];
    let config = config(48_000.0, 256);
    let processor = activate_recorded(&mut plugin, config);
    let quality_latency = latency(&mut plugin);
    let restarts =
        |plugin: &PluginInstance<RecordingHost>| recorded(plugin, |r| &r.restart_requests);
    let before = restarts(&plugin);

    // A host that does not restart: Low latency, held for many blocks.
    let (processor, _) = play(processor, &tone(40 * 256, 48_000.0), 256, |block| {
        if block == 0 {
            set_mode(low)
        } else {
            Vec::new()
        }
    });
    run_main_thread_callback(&mut plugin);
    assert_eq!(restarts(&plugin), before + 1, "one request per change");
    assert_eq!(
        latency(&mut plugin),
        quality_latency,
        "Quality still runs, so its latency is the one reported"
    );
    // Back to Quality and to Low again: a new change, a new request.
    let (processor, _) = play(
        processor,
        &tone(10 * 256, 48_000.0),
        256,
        |block| match block {
            2 => set_mode(quality),
            5 => set_mode(low),
            _ => Vec::new(),
        },
    );
    run_main_thread_callback(&mut plugin);
    assert_eq!(
        restarts(&plugin),
        before + 2,
        "re-armed after switching back"
    );
    assert_eq!(latency(&mut plugin), quality_latency);

    // The host restarts (the main thread may run callbacks in between); nice-plug reports the
    // new latency from inside `activate` (asking for one more restart to do so).
    plugin.deactivate(processor);
    run_main_thread_callback(&mut plugin);
    let processor = activate_recorded(&mut plugin, config);
    run_main_thread_callback(&mut plugin);
    let low_latency = latency(&mut plugin);
    assert!(
        low_latency < quality_latency,
        "{low_latency} vs {quality_latency}"
    );
    plugin.deactivate(processor);
    let processor = activate_recorded(&mut plugin, config);
    run_main_thread_callback(&mut plugin);
    assert_eq!(latency(&mut plugin), low_latency);
    plugin.deactivate(processor);
    run_main_thread_callback(&mut plugin);
    assert_eq!(
        recorded(&plugin, |r| &r.latency_changed_outside_activate),
        0,
        "host_latency.changed outside activate"
    );
    assert!(recorded(&plugin, |r| &r.latency_changed_in_activate) >= 1);
}

/// A model trained from a lower f0 floor (the cello, 64 Hz, for its C2) needs a longer pitch
/// frame, hence another latency, which may change only in `activate`. Chosen while Style runs,
/// it plays at once from the running analysis, and Style asks the host for a restart; after
/// it, the cello's latency (one 4 ms frame more) is reported. Back to the violin: again.
#[test]
fn a_model_trained_from_a_lower_f0_floor_asks_for_a_restart_and_reports_its_latency() {
    let entry = load_bundle(&built_bundle());
    let mut plugin = recording_instance(&entry, STYLE_ID);
    let style = param_id(&mut plugin, "Style");
    let cello = param_value_of_text(&mut plugin, style, "continuo-cello");
    let violin = param_value_of_text(&mut plugin, style, "continuo-violin");
    let config = config(48_000.0, 256);
    let processor = activate_recorded(&mut plugin, config);
    run_main_thread_callback(&mut plugin);
    let violin_latency = latency(&mut plugin);
    let restarts =
        |plugin: &PluginInstance<RecordingHost>| recorded(plugin, |r| &r.restart_requests);

    // Chooses `value` and plays (roughly in real time, so the loader gets its turn) until the
    // loaded model asks for a restart; a host that does not restart keeps the old latency.
    let choose = |plugin: &mut PluginInstance<RecordingHost>, processor, value| {
        let (before, running_latency) = (restarts(plugin), latency(plugin));
        let set = vec![ParamValueEvent::new(0, style, Pckn::match_all(), value)];
        let (mut processor, _) = play(processor, &tone(256, 48_000.0), 256, |_| set.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while restarts(plugin) == before {
            assert!(std::time::Instant::now() < deadline, "no restart requested");
            (processor, _) = play(processor, &tone(10 * 256, 48_000.0), 256, |_| Vec::new());
            run_main_thread_callback(plugin);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(restarts(plugin), before + 1, "one request");
        assert_eq!(
            latency(plugin),
            running_latency,
            "the running latency stays"
        );
        processor
    };
    let processor = choose(&mut plugin, processor, cello);
    plugin.deactivate(processor);
    run_main_thread_callback(&mut plugin);
    let processor = activate_recorded(&mut plugin, config);
    run_main_thread_callback(&mut plugin);
    // The cello's pitch frame holds two periods of 64 Hz: the frames of look-ahead more than
    // the violin's floor needs, 192 samples each at 48 kHz.
    let frames = |model: &str| {
        let manifest = continuo::model::Manifest::load(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("models/{model}.json")),
        )
        .expect("shipped manifest");
        let floor = manifest.features.expect("a timbre model").f0_min_hz;
        continuo::style::LatencyMode::Quality
            .voice_latency_frames(floor)
            .expect("a floor Style tracks") as u32
    };
    let extra = (frames("continuo-cello") - frames("continuo-violin")) * 192;
    assert!(extra > 0, "the cello tracks from below the violin's floor");
    assert_eq!(
        latency(&mut plugin),
        violin_latency + extra,
        "the cello's analysis"
    );

    let processor = choose(&mut plugin, processor, violin);
    plugin.deactivate(processor);
    run_main_thread_callback(&mut plugin);
    let processor = activate_recorded(&mut plugin, config);
    run_main_thread_callback(&mut plugin);
    assert_eq!(latency(&mut plugin), violin_latency);
    plugin.deactivate(processor);
    assert_eq!(
        recorded(&plugin, |r| &r.latency_changed_outside_activate),
        0,
        "host_latency.changed outside activate"
    );
}

/// clap-validator `process-varying-sample-rates`, Steinberg's validator at 1234.5678 Hz:
/// activation never fails. Where Style cannot resample, it passes audio through untouched
/// with no latency.
#[test]
fn style_activates_at_any_rate_and_passes_audio_through_where_it_cannot_run() {
    let entry = load_bundle(&built_bundle());
    for sample_rate in [1_234.567_8, 4_000.0, 768_000.0] {
        for max_block in [64u32, 4096] {
            let mut plugin = instance(&entry, STYLE_ID);
            let processor = plugin
                .activate(|_, _| (), config(sample_rate, max_block))
                .unwrap_or_else(|e| panic!("activate at {sample_rate} Hz: {e}"));
            assert_eq!(latency(&mut plugin), 0, "{sample_rate} Hz");
            let input = tone(3 * max_block as usize + 17, sample_rate);
            let (processor, output) = play(processor, &input, max_block as usize, |_| Vec::new());
            plugin.deactivate(processor);
            assert_eq!(output, input, "{sample_rate} Hz, blocks of {max_block}");
        }
    }
}

/// Bypassed output is exactly the latency-compensated dry signal: neither mix nor output gain
/// touch it.
#[test]
fn bypassed_style_outputs_exactly_the_delayed_input() {
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, STYLE_ID);
    let ids = ["Bypass", "Output Gain", "Mix"].map(|name| param_id(&mut plugin, name));
    let sample_rate = 48_000.0;
    let processor = plugin
        .activate(|_, _| (), config(sample_rate, 256))
        .expect("activate");
    let latency = latency(&mut plugin) as usize;
    // Bypass on, output gain at its minimum (−30 dB), mix half-way.
    let events = |block| {
        if block == 0 {
            [1.0, 0.0, 0.5]
                .iter()
                .zip(ids)
                .map(|(&value, id)| ParamValueEvent::new(0, id, Pckn::match_all(), value))
                .collect()
        } else {
            Vec::new()
        }
    };
    let settle = latency + (0.05 * sample_rate) as usize;
    let input = tone(settle + 20 * 256, sample_rate);
    let (processor, output) = play(processor, &input, 256, events);
    plugin.deactivate(processor);
    for n in settle..input.len() {
        assert_eq!(output[n], input[n - latency], "sample {n}");
    }
}

/// Offline bounce through the CLAP render extension: a host that switches the plugin to
/// offline rendering and re-activates it (as asked) gets the same wet output on every run.
#[test]
fn offline_render_through_the_render_extension_is_wet_and_deterministic() {
    use clack_extensions::render::{PluginRender, RenderMode};

    let entry = load_bundle(&built_bundle());
    let sample_rate = 48_000.0;
    let input = tone(48_000, sample_rate);
    let render = |mix: f64| {
        let mut plugin = recording_instance(&entry, STYLE_ID);
        let mix_id = param_id(&mut plugin, "Mix");
        let processor = activate_recorded(&mut plugin, config(sample_rate, 512));
        let restarts = recorded(&plugin, |r| &r.restart_requests);
        {
            let handle = plugin.plugin_handle();
            let extension: PluginRender = handle.get_extension().expect("render extension");
            extension
                .set(&handle, RenderMode::Offline)
                .expect("offline rendering");
        }
        assert_eq!(
            recorded(&plugin, |r| &r.restart_requests),
            restarts + 1,
            "switching to offline asks for a restart"
        );
        plugin.deactivate(processor);
        let processor = activate_recorded(&mut plugin, config(sample_rate, 512));
        let latency = latency(&mut plugin) as usize;
        let (processor, output) = play(processor, &input, 512, |block| {
            if block == 0 {
                vec![ParamValueEvent::new(0, mix_id, Pckn::match_all(), mix)]
            } else {
                Vec::new()
            }
        });
        plugin.deactivate(processor);
        (output, latency)
    };
    let (first, latency) = render(1.0);
    let (second, _) = render(1.0);
    assert_eq!(first, second, "two offline renders differ");
    // Wet from the first sample: a fully wet bounce is not the delayed dry signal anywhere
    // past the start (a late worker would leave dry stretches in it).
    let (dry, _) = render(0.0);
    let window = 2048;
    for start in (latency + window..input.len() - window).step_by(window) {
        let differs = (start..start + window).any(|n| (first[n] - dry[n]).abs() > 1e-3);
        assert!(differs, "dry stretch at {start}");
    }
}

/// A host that renders faster than real time but says it runs live (DawDreamer does): with
/// Offline Render at Always, Style waits for its worker and gives what an offline render gives
/// (with Auto, the late worker would leave the dry signal in it).
#[test]
fn offline_render_always_waits_even_when_the_host_says_live() {
    let entry = load_bundle(&built_bundle());
    let sample_rate = 48_000.0;
    let input = tone(24_000, sample_rate);

    let mut plugin = instance(&entry, STYLE_ID);
    let processor = activate_offline(&mut plugin, sample_rate, 512);
    let (processor, offline) = play(processor, &input, 512, |_| Vec::new());
    plugin.deactivate(processor);

    let mut plugin = instance(&entry, STYLE_ID);
    let always = param_id(&mut plugin, "Offline Render");
    // No render extension call: the host leaves Style in real-time mode.
    let processor = plugin
        .activate(|_, _| (), config(sample_rate, 512))
        .expect("activate");
    let (processor, live) = play(processor, &input, 512, |block| {
        if block == 0 {
            vec![ParamValueEvent::new(0, always, Pckn::match_all(), 1.0)]
        } else {
            Vec::new()
        }
    });
    plugin.deactivate(processor);

    let difference = offline
        .iter()
        .zip(&live)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        difference < 1e-6,
        "Style in real-time mode with Offline Render at Always matches an offline render \
         (max difference {difference})"
    );
}
