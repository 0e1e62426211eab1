//! Throughput of the DSP layer on 1 s of 48 kHz audio, on one core.
//!
//! Prints a real-time factor (audio seconds processed per wall-clock second) for analysis
//! (pitch + loudness, streaming, hop 256) and synthesis (64 harmonics + 65 noise bands, hop
//! 256 and 64) and note tracking (Continuo Phrase's audio input: pitch, onsets and the note state
//! machine at its own hop), then runs the same work under criterion.

use std::hint::black_box;
use std::time::Instant;

use continuo::dsp::loudness::{LoudnessConfig, LoudnessMeter};
use continuo::dsp::notes::{NoteTracker, NoteTrackerConfig};
use continuo::dsp::pitch::{PitchConfig, PitchTracker};
use continuo::dsp::synth::{FrameControls, HarmonicNoiseSynth, SynthConfig};
use criterion::{criterion_group, criterion_main, Criterion};

const SR: f32 = 48000.0;
const N_HARMONICS: usize = 64;
const N_BANDS: usize = 65;

/// 1 s of a vibrato sawtooth-like tone with a little noise.
fn test_signal() -> Vec<f32> {
    let mut phase = 0.0f32;
    let mut state = 1u32;
    (0..SR as usize)
        .map(|n| {
            let t = n as f32 / SR;
            let f0 = 220.0 * (1.0 + 0.01 * (std::f32::consts::TAU * 5.0 * t).sin());
            phase = (phase + f0 / SR).fract();
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state as f32 / u32::MAX as f32 - 0.5) * 0.01;
            0.3 * (2.0 * phase - 1.0) + noise
        })
        .collect()
}

struct Analysis {
    pitch: PitchTracker,
    loudness: LoudnessMeter,
    hop: usize,
}

impl Analysis {
    fn new(hop: usize) -> Self {
        Self {
            pitch: PitchTracker::new(PitchConfig::new(SR, hop)).unwrap(),
            loudness: LoudnessMeter::new(LoudnessConfig::new(SR, hop)).unwrap(),
            hop,
        }
    }

    fn run(&mut self, signal: &[f32]) -> f32 {
        let mut acc = 0.0;
        for chunk in signal.chunks_exact(self.hop) {
            let p = self.pitch.process_hop(chunk);
            let l = self.loudness.process_hop(chunk);
            acc += p.f0_hz + l.loudness_db;
        }
        acc
    }
}

struct Synthesis {
    synth: HarmonicNoiseSynth,
    distribution: Vec<f32>,
    noise: Vec<f32>,
    out: Vec<f32>,
    hop: usize,
}

impl Synthesis {
    fn new(hop: usize) -> Self {
        Self {
            synth: HarmonicNoiseSynth::new(SynthConfig::new(SR, hop, N_HARMONICS, N_BANDS))
                .unwrap(),
            distribution: (0..N_HARMONICS).map(|k| 1.0 / (k + 1) as f32).collect(),
            noise: (0..N_BANDS).map(|j| 0.01 / (j + 1) as f32).collect(),
            out: vec![0.0; hop],
            hop,
        }
    }

    /// 1 s of audio; f0 glides so every hop exercises the interpolation. A 64-harmonic
    /// 110–130 Hz tone keeps all harmonics below Nyquist (the worst case).
    fn run(&mut self) -> f32 {
        let frames = SR as usize / self.hop;
        let mut acc = 0.0;
        for i in 0..frames {
            let controls = FrameControls {
                f0_hz: 110.0 + 20.0 * (i as f32 / frames as f32),
                amplitude: 0.3,
                harmonic_distribution: &self.distribution,
                noise_magnitudes: &self.noise,
            };
            self.synth.process_frame(&controls, &mut self.out);
            acc += self.out[0];
        }
        acc
    }
}

/// Live transcription: the note tracker over the signal, counting the events it reports.
fn track_notes(tracker: &mut NoteTracker, signal: &[f32]) -> usize {
    let hop = tracker.config().hop_size;
    let mut events = 0;
    for chunk in signal.chunks_exact(hop) {
        tracker.process_hop(chunk, |_| events += 1);
    }
    events
}

/// Median wall-clock seconds of `f` over `runs` runs.
fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn report_real_time_factor(_c: &mut Criterion) {
    let signal = test_signal();
    let mut analysis = Analysis::new(256);
    let mut synth256 = Synthesis::new(256);
    let mut synth64 = Synthesis::new(64);
    let t_analysis = median_seconds(31, || {
        black_box(analysis.run(&signal));
    });
    let t_synth256 = median_seconds(31, || {
        black_box(synth256.run());
    });
    let t_synth64 = median_seconds(31, || {
        black_box(synth64.run());
    });
    let mut tracker = NoteTracker::new(NoteTrackerConfig::new(SR)).unwrap();
    let t_notes = median_seconds(31, || {
        black_box(track_notes(&mut tracker, &signal));
    });
    println!("real-time factors on 1 s of 48 kHz audio (one core, median of 31 runs):");
    println!(
        "  analysis (pitch + loudness, hop 256):        {:8.1}x  ({:.3} ms)",
        1.0 / t_analysis,
        t_analysis * 1e3
    );
    println!(
        "  synthesis (64 harm + 65 bands, hop 256):     {:8.1}x  ({:.3} ms)",
        1.0 / t_synth256,
        t_synth256 * 1e3
    );
    println!(
        "  synthesis (64 harm + 65 bands, hop 64):      {:8.1}x  ({:.3} ms)",
        1.0 / t_synth64,
        t_synth64 * 1e3
    );
    println!(
        "  note tracking (hop {:3}):                    {:8.1}x  ({:.3} ms)",
        tracker.config().hop_size,
        1.0 / t_notes,
        t_notes * 1e3
    );
    println!(
        "  analysis + synthesis (hop 256):              {:8.1}x",
        1.0 / (t_analysis + t_synth256)
    );
    println!(
        "  analysis + synthesis (hop 256 / 64):         {:8.1}x",
        1.0 / (t_analysis + t_synth64)
    );
}

fn bench_dsp(c: &mut Criterion) {
    let signal = test_signal();
    let mut analysis = Analysis::new(256);
    c.bench_function("analysis_pitch_loudness_48k_1s_hop256", |b| {
        b.iter(|| black_box(analysis.run(black_box(&signal))))
    });
    let mut synth = Synthesis::new(256);
    c.bench_function("synth_64h_65n_48k_1s_hop256", |b| {
        b.iter(|| black_box(synth.run()))
    });
    let mut synth = Synthesis::new(64);
    c.bench_function("synth_64h_65n_48k_1s_hop64", |b| {
        b.iter(|| black_box(synth.run()))
    });
    let mut tracker = NoteTracker::new(NoteTrackerConfig::new(SR)).unwrap();
    c.bench_function("note_tracking_48k_1s", |b| {
        b.iter(|| black_box(track_notes(&mut tracker, black_box(&signal))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = report_real_time_factor, bench_dsp
}
criterion_main!(benches);
