//! Worker real-time factor of Continuo Voice: seconds of 48 kHz stereo audio played per second
//! of one core, through the processor the worker runs (contour, decoder per note, host-rate
//! synthesis), with 1 and 8 notes held. Prints a table (bars: ≥ 50× for one voice, ≥ 6× for
//! eight), then runs the same work under criterion (one iteration = one second of audio).
//!
//! `ORT_DYLIB_PATH=target/onnxruntime/libonnxruntime.so.1.31.1 cargo bench --bench voice`
//! (models run on ONNX Runtime when it is found, else on tract).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use continuo::engine::audio::HopProcessor;
use continuo::instrument::{
    load_bank, note_queue, InstrumentProcessor, NoteAction, NoteSender, SharedVoiceSettings,
    TimedNote,
};
use continuo::model::{BackendChoice, ModelDirs};
use continuo::style::{StyleChoice, StyleStatus, DEFAULT_STYLE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RATE: u32 = 48_000;

/// (label, notes held, style B): one and eight voices of the default model, and one voice
/// morphing towards a second model (two decoders per note).
const CASES: [(&str, usize, Option<&str>); 3] = [
    ("one_voice", 1, None),
    ("eight_voices", 8, None),
    ("one_voice_morph_two_models", 1, Some("continuo-flute")),
];

/// A processor with `notes` held and one second of hops to play.
struct OneSecond {
    processor: InstrumentProcessor,
    _notes: NoteSender,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    index: u64,
}

impl OneSecond {
    fn new(notes: usize, b: Option<&str>) -> Self {
        let dirs = ModelDirs::new([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")]);
        let choice = StyleChoice {
            a: DEFAULT_STYLE.into(),
            b: b.map(Into::into),
        };
        let status = Arc::new(StyleStatus::default());
        let (bank, _) = load_bank(&choice, &dirs, BackendChoice::Auto, RATE, status.clone())
            .expect("default model loads");
        let (mut sender, events) = note_queue();
        let (_, banks) = crossbeam_channel::unbounded();
        let processor = InstrumentProcessor::new(
            RATE,
            Some(bank),
            events,
            banks,
            Arc::new(SharedVoiceSettings::default()),
            Arc::default(),
            status,
        );
        // A chord of thirds from G3, held for ever (the table measures sustained notes).
        for k in 0..notes {
            let action = NoteAction::On {
                note: 55 + 4 * k as u8,
                velocity: 0.8,
            };
            sender
                .push(TimedNote { index: 0, action })
                .expect("queue has room");
        }
        let hop = processor.hop_size();
        Self {
            processor,
            _notes: sender,
            input: vec![vec![0.0; hop]; 2],
            output: vec![vec![0.0; hop]; 2],
            index: 0,
        }
    }

    fn run(&mut self) {
        let hop = self.processor.hop_size();
        for _ in 0..RATE as usize / hop {
            self.processor.begin_hop(self.index);
            self.processor.process_hop(&self.input, &mut self.output);
            self.index += hop as u64;
        }
        black_box(&self.output);
    }
}

fn report_real_time_factor(_: &mut Criterion) {
    println!("| Voice worker, 48 kHz stereo | real-time factor (best of 5 × 1 s) |");
    println!("| --- | --- |");
    for (label, notes, b) in CASES {
        let mut work = OneSecond::new(notes, b);
        work.run(); // warm-up, and the attacks
        assert_eq!(
            work.processor.active_voices(),
            notes,
            "{label}: every note sounds"
        );
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

fn bench_voice(c: &mut Criterion) {
    let mut group = c.benchmark_group("voice_worker_48k_stereo_1s");
    group.throughput(Throughput::Elements(u64::from(RATE)));
    for (label, notes, b) in CASES {
        let mut work = OneSecond::new(notes, b);
        group.bench_function(label, |bench| bench.iter(|| work.run()));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = report_real_time_factor, bench_voice
}
criterion_main!(benches);
