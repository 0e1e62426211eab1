//! Worker real-time factor of Continuo Style: seconds of 48 kHz stereo audio restyled per
//! second of one core, through the processor the worker runs (resampling, analysis, model,
//! synthesis). Prints a table (bar: ≥ 50× real time for the default model), then runs the same
//! work under criterion (one iteration = one second of audio, so time per iteration = 1 / RTF).
//!
//! `ORT_DYLIB_PATH=target/onnxruntime/libonnxruntime.so.1.31.1 cargo bench --bench style`
//! (models run on ONNX Runtime when it is found, else on tract).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use continuo::engine::audio::HopProcessor;
use continuo::model::{BackendChoice, ModelDirs};
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleStatus,
    DEFAULT_STYLE,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RATE: f32 = 48_000.0;

/// (label, mode, style A, style B): the default full-band violin (alone, and morphing with the
/// full-band flute), and the v1 (8 kHz band) flute the tests keep, for comparison in the same run.
const CASES: [(&str, LatencyMode, &str, Option<&str>); 4] = [
    (
        "quality_one_style",
        LatencyMode::Quality,
        DEFAULT_STYLE,
        None,
    ),
    (
        "low_latency_one_style",
        LatencyMode::LowLatency,
        DEFAULT_STYLE,
        None,
    ),
    (
        "quality_morph_two_models",
        LatencyMode::Quality,
        DEFAULT_STYLE,
        Some("continuo-flute"),
    ),
    (
        "quality_one_v1_style_8k_band",
        LatencyMode::Quality,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/continuo-flute-v1.json"
        ),
        None,
    ),
];

/// A processor playing style `a` (and `b` to morph towards) and one second of input, cut into
/// its hops.
struct OneSecond {
    processor: StyleProcessor,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    hops: usize,
}

impl OneSecond {
    fn new(mode: LatencyMode, a: &str, b: Option<&str>) -> Self {
        let dirs = ModelDirs::new([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")]);
        let choice = StyleChoice {
            a: a.into(),
            b: b.map(Into::into),
        };
        let settings = Arc::new(SharedStyleSettings::default());
        let status = Arc::new(StyleStatus::default());
        let voice = load_voice(&choice, &dirs, BackendChoice::Auto, mode, settings, status)
            .expect("default model loads");
        let processor = StyleProcessor::new(RATE, 2, mode, Some(voice)).expect("processor");
        let hop = processor.hop_size();
        let input = (0..2)
            .map(|c| {
                (0..hop)
                    .map(|n| {
                        0.3 * (std::f32::consts::TAU * 330.0 * n as f32 / RATE + c as f32).sin()
                    })
                    .collect()
            })
            .collect();
        Self {
            processor,
            input,
            output: vec![vec![0.0; hop]; 2],
            hops: RATE as usize / hop,
        }
    }

    fn run(&mut self) {
        for _ in 0..self.hops {
            self.processor.process_hop(&self.input, &mut self.output);
        }
        black_box(&self.output);
    }
}

fn report_real_time_factor(_: &mut Criterion) {
    println!("| Style worker, 48 kHz stereo | real-time factor (best of 5 × 1 s) |");
    println!("| --- | --- |");
    for (label, mode, a, b) in CASES {
        let mut work = OneSecond::new(mode, a, b);
        work.run(); // warm-up
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                work.run();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("| {label} | {:.0}× |", 1.0 / best);
    }
}

fn bench_style(c: &mut Criterion) {
    let mut group = c.benchmark_group("style_worker_48k_stereo_1s");
    group.throughput(Throughput::Elements(RATE as u64));
    for (label, mode, a, b) in CASES {
        let mut work = OneSecond::new(mode, a, b);
        group.bench_function(label, |bench| bench.iter(|| work.run()));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = report_real_time_factor, bench_style
}
criterion_main!(benches);
