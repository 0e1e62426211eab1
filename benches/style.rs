//! Worker real-time factor of Continuo Style: seconds of 48 kHz audio restyled per second of
//! one core, through the processor the worker runs (resampling, analysis, model, synthesis).
//!
//! `ORT_DYLIB_PATH=target/onnxruntime/libonnxruntime.so.1.31.1 cargo bench --bench style`
//! Prints a table; bar: ≥ 50× real time for the default model. Models run on ONNX Runtime when
//! `ORT_DYLIB_PATH` points at it, else on tract.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use continuo::engine::audio::HopProcessor;
use continuo::model::{BackendChoice, ModelDirs};
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleStatus,
};

const RATE: f32 = 48_000.0;
const SECONDS: usize = 10;

fn real_time_factor(mode: LatencyMode, b: Option<&str>) -> f64 {
    let dirs = ModelDirs::new([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")]);
    let choice = StyleChoice {
        a: continuo::style::DEFAULT_STYLE.into(),
        b: b.map(Into::into),
    };
    let settings = Arc::new(SharedStyleSettings::default());
    let status = Arc::new(StyleStatus::default());
    let voice = load_voice(&choice, &dirs, BackendChoice::Auto, mode, settings, status)
        .expect("default model loads");
    let mut p = StyleProcessor::new(RATE, 2, mode, Some(voice)).expect("processor");
    let hop = p.hop_size();
    let input: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            (0..hop)
                .map(|n| 0.3 * (std::f32::consts::TAU * 330.0 * n as f32 / RATE + c as f32).sin())
                .collect()
        })
        .collect();
    let mut output = vec![vec![0.0; hop]; 2];
    let hops = SECONDS * RATE as usize / hop;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..hops {
            p.process_hop(&input, &mut output);
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    (hops * hop) as f64 / RATE as f64 / best
}

fn main() {
    println!("| Style worker, 48 kHz stereo | real-time factor (best of 3 × {SECONDS} s) |");
    println!("| --- | --- |");
    for (label, mode, b) in [
        ("quality, one style", LatencyMode::Quality, None),
        ("low latency, one style", LatencyMode::LowLatency, None),
        (
            "quality, morph (two models)",
            LatencyMode::Quality,
            Some("continuo-flute"),
        ),
    ] {
        let rtf = real_time_factor(mode, b);
        println!("| {label} | {rtf:.0}× |");
    }
}
