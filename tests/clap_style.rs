//! Continuo Style in a CLAP host (the built debug bundle with `assert_process_allocs`):
//! changing the Style parameter while audio runs loads the other model off the audio thread
//! and hot-swaps it in — the plugin's log says so, the audio never stops, never goes
//! non-finite and never jumps.
//!
//! One test per process: it sets the process-wide `NICE_LOG`.

mod clap_support;

use std::time::{Duration, Instant};

use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;
use clap_support::*;

#[test]
fn changing_style_hot_swaps_the_model_while_audio_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("style.log");
    std::env::set_var("NICE_LOG", &log);
    let entry = load_bundle(&built_bundle());
    let mut plugin = instance(&entry, STYLE_ID);
    let style = param_id(&mut plugin, "Style");
    let flute = param_value_of_text(&mut plugin, style, "continuo-flute");
    let sample_rate = 48_000.0;
    let block = 256usize;
    let config = PluginAudioConfiguration {
        sample_rate,
        min_frames_count: 1,
        max_frames_count: block as u32,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        read_log().contains("playing continuo-violin"),
        "activation loads the default style:\n{}",
        read_log()
    );

    let processor = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = StereoPorts::new();
                let (mut last, mut max_step, mut n) = (0.0f32, 0.0f32, 0usize);
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut swapped_at = None;
                // Play until the swap is logged, then one more second.
                while swapped_at.is_none_or(|at: usize| n < at + sample_rate as usize) {
                    assert!(Instant::now() < deadline, "no swap logged:\n{}", read_log());
                    let tone: Vec<f32> = (n..n + block)
                        .map(|i| {
                            0.3 * (std::f32::consts::TAU * 330.0 * i as f32 / sample_rate as f32)
                                .sin()
                        })
                        .collect();
                    let events: Vec<ParamValueEvent> = if n == 0 {
                        vec![ParamValueEvent::new(0, style, Pckn::match_all(), flute)]
                    } else {
                        Vec::new()
                    };
                    let (left, right) = ports.process(
                        &mut processor,
                        &tone,
                        &tone,
                        &InputEvents::from_buffer(&events),
                    );
                    assert!(left.iter().chain(&right).all(|y| y.is_finite()));
                    for &y in &left {
                        max_step = max_step.max((y - last).abs());
                        last = y;
                    }
                    n += block;
                    if swapped_at.is_none() && read_log().contains("playing continuo-flute") {
                        swapped_at = Some(n);
                    }
                    // Roughly real time, so the loader (wall-clock polling) gets its turn.
                    std::thread::sleep(Duration::from_millis(5));
                }
                // A restyled tone's own steps stay far below this; a dropout would not.
                assert!(max_step < 0.5, "largest sample step {max_step}");
                processor.stop_processing()
            })
            .join()
            .expect("audio thread")
    });
    plugin.deactivate(processor);
}
