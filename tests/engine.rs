//! The Style engine end to end: exact identity through worker + rings at every block size,
//! sample rate and channel count, the reported latency proven by an impulse, and the
//! late-worker fallback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use continuo::engine::audio::{self, EngineConfig, HopProcessor, MixGain, Timing};
use continuo::engine::offline;
use continuo::engine::resynthesis::StftResynthesis;

const WET: MixGain = MixGain::WET;

fn test_signal(frames: usize, channel: usize, sample_rate: f32) -> Vec<f32> {
    // Two partials plus a deterministic pseudo-noise component, different per channel.
    let mut state = 0x1234_5678u32 ^ (channel as u32 * 0x9e37_79b9);
    (0..frames)
        .map(|n| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let t = n as f32 / sample_rate;
            0.4 * (std::f32::consts::TAU * 220.0 * (channel + 1) as f32 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 3_150.0 * t).sin()
                + 0.1 * noise
        })
        .collect()
}

/// Runs `input` through a fresh STFT engine in blocks, without latency compensation.
fn run_raw(sample_rate: f32, block: usize, input: &[Vec<f32>]) -> (Vec<Vec<f32>>, usize) {
    let config = EngineConfig {
        sample_rate,
        channels: input.len(),
        max_block_size: block,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, input.len())).expect("worker");
    let mut output = input.to_vec();
    let frames = output[0].len();
    let mut offset = 0;
    while offset < frames {
        let len = block.min(frames - offset);
        let mut slices: Vec<&mut [f32]> = output
            .iter_mut()
            .map(|c| &mut c[offset..offset + len])
            .collect();
        engine.process(&mut slices, Timing::Offline, || WET);
        offset += len;
    }
    assert_eq!(
        engine.stats().late_blocks.load(Ordering::Relaxed),
        0,
        "offline mode never misses"
    );
    (output, engine.latency_samples())
}

#[test]
fn identity_is_exact_at_reported_latency_for_every_block_size_rate_and_layout() {
    for sample_rate in [44_100.0, 48_000.0, 96_000.0] {
        for block in [1, 7, 64, 512, 4096] {
            for channels in [1, 2] {
                // Long enough to cover the latency plus a good stretch of signal; shorter for
                // block size 1, where each block waits for the worker.
                let signal_frames = if block == 1 { 3_000 } else { 12_000 };
                let frames = 4 * 4096 + 4096 + signal_frames;
                let input: Vec<Vec<f32>> = (0..channels)
                    .map(|c| test_signal(frames, c, sample_rate))
                    .collect();
                let (output, latency) = run_raw(sample_rate, block, &input);
                assert!(
                    latency < frames - signal_frames,
                    "test signal too short for latency {latency}"
                );
                let mut max_error = 0.0f32;
                for (out, inp) in output.iter().zip(&input) {
                    assert!(
                        out[..latency].iter().all(|s| s.abs() <= 1e-5),
                        "output before latency must be silent"
                    );
                    for n in latency..frames {
                        max_error = max_error.max((out[n] - inp[n - latency]).abs());
                    }
                }
                assert!(
                    max_error <= 1e-5,
                    "{sample_rate} Hz, block {block}, {channels} ch: max error {max_error} at latency {latency}"
                );
            }
        }
    }
}

#[test]
fn impulse_lands_exactly_at_reported_latency() {
    for (sample_rate, block) in [(44_100.0, 64), (48_000.0, 512), (96_000.0, 7)] {
        let frames = 20_000;
        let mut impulse = vec![0.0f32; frames];
        impulse[123] = 1.0;
        let (output, latency) = run_raw(sample_rate, block, &[impulse]);
        let peak = output[0]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(index, _)| index)
            .expect("non-empty");
        assert_eq!(peak, 123 + latency, "{sample_rate} Hz block {block}");
        assert!((output[0][peak] - 1.0).abs() < 1e-5);
    }
}

#[test]
fn offline_render_compensates_latency() {
    let sample_rate = 48_000.0;
    let input = vec![
        test_signal(10_000, 0, sample_rate),
        test_signal(10_000, 1, sample_rate),
    ];
    let config = EngineConfig {
        sample_rate,
        channels: 2,
        max_block_size: 256,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 2)).expect("worker");
    let output = offline::render(&mut engine, &input, 256, WET);
    assert_eq!(output[0].len(), input[0].len());
    for (out, inp) in output.iter().zip(&input) {
        let max_error = out
            .iter()
            .zip(inp)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_error <= 1e-5, "max error {max_error}");
    }
}

/// Halves its input, latency 0; stalls while `stall` is set.
struct StallingHalver {
    stall: Arc<AtomicBool>,
}

impl HopProcessor for StallingHalver {
    fn hop_size(&self) -> usize {
        64
    }
    fn latency_samples(&self) -> usize {
        0
    }
    fn process_hop(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        while self.stall.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        for (out, inp) in output.iter_mut().zip(input) {
            for (o, i) in out.iter_mut().zip(inp) {
                *o = 0.5 * i;
            }
        }
    }
    fn reset(&mut self) {}
}

#[test]
fn late_worker_falls_back_to_dry_smoothly_and_recovers() {
    let sample_rate = 48_000.0;
    let block = 128;
    let stall = Arc::new(AtomicBool::new(false));
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: block,
    };
    let (mut engine, _worker) = audio::start(
        config,
        StallingHalver {
            stall: stall.clone(),
        },
    )
    .expect("worker");
    let latency = engine.latency_samples();
    let fade = engine.latency().fade;
    let frames = 300 * block;
    let input: Vec<f32> = (0..frames)
        .map(|n| 0.5 * (std::f32::consts::TAU * 220.0 * n as f32 / sample_rate).sin())
        .collect();
    let mut output = input.clone();
    for (index, chunk) in output.chunks_mut(block).enumerate() {
        let timing = match index {
            100 => {
                stall.store(true, Ordering::Relaxed);
                Timing::Realtime
            }
            101..=199 => Timing::Realtime,
            200 => {
                stall.store(false, Ordering::Relaxed);
                Timing::Offline
            }
            _ => Timing::Offline,
        };
        engine.process(&mut [chunk], timing, || WET);
    }
    let stats = engine.stats();
    let late_blocks = stats.late_blocks.load(Ordering::Relaxed);
    assert!(
        late_blocks > 10,
        "the stalled worker must show as late blocks, got {late_blocks}"
    );

    let dry = |n: usize| input[n - latency];
    let max_deviation = |range: std::ops::Range<usize>, expected: &dyn Fn(usize) -> f32| {
        range
            .map(|n| (output[n] - expected(n)).abs())
            .fold(0.0f32, f32::max)
    };
    // Before the stall: wet (half the input).
    assert!(max_deviation(latency + fade..100 * block, &|n| 0.5 * dry(n)) < 1e-6);
    // Deep in the stall: the dry signal, exactly.
    assert!(
        max_deviation(160 * block..200 * block, &|n| dry(n)) < 1e-6,
        "stalled worker → dry"
    );
    // Well after the stall: wet again.
    assert!(
        max_deviation(260 * block..frames, &|n| 0.5 * dry(n)) < 1e-6,
        "wet returns after the stall"
    );

    // No discontinuity: the largest sample-to-sample step stays within twice what the sine
    // itself has (2π·220/48000·0.5 ≈ 0.0144); a hard switch between 0.5x and x would jump
    // up to 0.25.
    let natural_step = std::f32::consts::TAU * 220.0 / sample_rate * 0.5;
    let max_step = output
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_step <= 2.0 * natural_step,
        "max step {max_step} vs natural {natural_step}"
    );
}

#[test]
fn non_finite_input_is_silenced_and_counted() {
    let sample_rate = 48_000.0;
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: 64,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 1)).expect("worker");
    let mut input = test_signal(8_000, 0, sample_rate);
    input[100] = f32::NAN;
    input[200] = f32::INFINITY;
    input[300] = f32::NEG_INFINITY;
    let output = offline::render(&mut engine, &[input], 64, WET);
    assert!(output[0].iter().all(|s| s.is_finite()));
    assert!(
        output[0][100].abs() < 1e-5,
        "the NaN sample comes out as silence"
    );
    assert_eq!(engine.stats().non_finite_inputs.load(Ordering::Relaxed), 3);
}

#[test]
fn reset_restarts_cleanly_without_counting_misses() {
    let sample_rate = 48_000.0;
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: 256,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 1)).expect("worker");
    let input = test_signal(20_000, 0, sample_rate);
    let first = offline::render(&mut engine, std::slice::from_ref(&input), 256, WET);
    engine.reset();
    let second = offline::render(&mut engine, std::slice::from_ref(&input), 256, WET);
    assert_eq!(engine.stats().late_blocks.load(Ordering::Relaxed), 0);
    for (a, b) in first[0].iter().zip(&second[0]) {
        assert!(
            (a - b).abs() <= 1e-6,
            "a reset engine renders the same again"
        );
    }
    let error = second[0]
        .iter()
        .zip(&input)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(error <= 1e-5, "max error after reset {error}");
}

/// Scales its input by `gain` after a `latency`-sample delay: a processor with history, like
/// the STFT or a model with context.
struct DelayedGain {
    gain: f32,
    latency: usize,
    history: Vec<f32>,
    position: usize,
}

impl DelayedGain {
    fn new(gain: f32, latency: usize) -> Self {
        Self {
            gain,
            latency,
            history: vec![0.0; latency],
            position: 0,
        }
    }
}

impl HopProcessor for DelayedGain {
    fn hop_size(&self) -> usize {
        64
    }
    fn latency_samples(&self) -> usize {
        self.latency
    }
    fn process_hop(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        for (inp, out) in input[0].iter().zip(output[0].iter_mut()) {
            let delayed = std::mem::replace(&mut self.history[self.position], *inp);
            self.position = (self.position + 1) % self.latency;
            *out = self.gain * delayed;
        }
    }
    fn reset(&mut self) {
        self.history.fill(0.0);
        self.position = 0;
    }
}

#[test]
fn hot_swap_crossfades_to_the_new_processor_without_a_click() {
    let sample_rate = 48_000.0;
    let block = 128;
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: block,
    };
    let (mut engine, worker) = audio::start(config, DelayedGain::new(0.5, 200)).expect("worker");
    let latency = engine.latency_samples();
    let frames = 200 * block;
    let input: Vec<f32> = (0..frames)
        .map(|n| 0.5 * (std::f32::consts::TAU * 220.0 * n as f32 / sample_rate).sin())
        .collect();
    let mut output = input.clone();
    for (index, chunk) in output.chunks_mut(block).enumerate() {
        if index == 80 {
            assert!(worker.send(audio::AudioCommand::Replace(DelayedGain::new(1.0, 200))));
        }
        if index == 120 {
            // A processor with another latency cannot replace it: refused, nothing changes.
            assert!(worker.send(audio::AudioCommand::Replace(DelayedGain::new(2.0, 400))));
        }
        engine.process(&mut [chunk], Timing::Offline, || WET);
    }
    let stats = engine.stats();
    assert_eq!(stats.swaps_completed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.swaps_rejected.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats.late_blocks.load(Ordering::Relaxed),
        0,
        "no dropout during the swap"
    );

    let expected = |n: usize, gain: f32| gain * input[n - latency];
    let max_deviation = |range: std::ops::Range<usize>, gain: f32| {
        range
            .map(|n| (output[n] - expected(n, gain)).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(
        max_deviation(latency..80 * block, 0.5) < 1e-6,
        "old processor before the swap"
    );
    assert!(
        max_deviation(110 * block..frames, 1.0) < 1e-6,
        "new processor after the swap"
    );
    // A 30 ms equal-power fade from 0.5x to 1.0x adds at most ≈ 0.5·0.5·(π/2)/1440 per sample
    // to the sine's own step (≈ 0.0144); a hard switch would jump by up to 0.25.
    let natural_step = std::f32::consts::TAU * 220.0 / sample_rate * 0.5;
    let max_step = output
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_step <= 1.2 * natural_step,
        "max step {max_step} vs natural {natural_step}"
    );
}

#[test]
fn failed_model_loads_leave_the_engine_running() {
    use continuo::model::{load_model, BackendChoice, ModelKind};

    let sample_rate = 48_000.0;
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: 256,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 1)).expect("worker");
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b"{ not json").expect("write");
    std::fs::write(dir.path().join("garbage.onnx"), b"\x08\x01garbage").expect("write");
    std::fs::write(
        dir.path().join("garbage.json"),
        br#"{"contract_version": 99}"#,
    )
    .expect("write");

    let input = test_signal(30_000, 0, sample_rate);
    let loads = std::thread::spawn({
        let paths = [
            broken,
            dir.path().join("garbage.json"),
            dir.path().join("missing.json"),
        ];
        move || {
            paths
                .iter()
                .map(|path| {
                    load_model(path, ModelKind::Timbre, BackendChoice::Tract)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        }
    });
    let output = offline::render(&mut engine, std::slice::from_ref(&input), 256, WET);
    let results = loads.join().expect("loader thread");
    assert!(results.iter().all(Result::is_err), "{results:?}");
    let error = output[0]
        .iter()
        .zip(&input)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        error <= 1e-5,
        "audio unaffected by failed loads: error {error}"
    );
}

#[test]
fn bypass_is_exactly_the_delayed_dry_signal_whatever_the_gain() {
    let sample_rate = 48_000.0;
    let config = EngineConfig {
        sample_rate,
        channels: 2,
        max_block_size: 256,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 2)).expect("worker");
    let input = vec![
        test_signal(10_000, 0, sample_rate),
        test_signal(10_000, 1, sample_rate),
    ];
    let bypassed = MixGain {
        mix: 0.7,
        gain: 0.25,
        bypass: 1.0,
    };
    let output = offline::render(&mut engine, &input, 256, bypassed);
    // `render` removes the latency, so bypassed output is the input, bit for bit.
    assert_eq!(output, input);
}

#[test]
fn a_block_with_fewer_channels_than_the_engine_is_processed_on_those() {
    let sample_rate = 48_000.0;
    let block = 128;
    let config = EngineConfig {
        sample_rate,
        channels: 2,
        max_block_size: block,
    };
    let (mut engine, _worker) =
        audio::start(config, StftResynthesis::new(sample_rate, 2)).expect("worker");
    let latency = engine.latency_samples();
    let input = test_signal(latency + 20 * block, 0, sample_rate);
    let mut output = input.clone();
    for chunk in output.chunks_mut(block) {
        // A host passing one channel to a stereo-activated plugin.
        engine.process(&mut [chunk], Timing::Offline, || WET);
    }
    let max_error = (latency..input.len())
        .map(|n| (output[n] - input[n - latency]).abs())
        .fold(0.0f32, f32::max);
    assert!(max_error <= 1e-5, "max error {max_error}");
}

#[test]
fn offline_mode_waits_for_a_stuck_worker_once_then_plays_dry_and_says_so() {
    let sample_rate = 48_000.0;
    let block = 256;
    let stall = Arc::new(AtomicBool::new(false));
    let config = EngineConfig {
        sample_rate,
        channels: 1,
        max_block_size: block,
    };
    let (mut engine, _worker) = audio::start(
        config,
        StallingHalver {
            stall: stall.clone(),
        },
    )
    .expect("worker");
    let wait_limit = Duration::from_millis(200);
    engine.set_offline_wait_limit(wait_limit);
    let latency = engine.latency_samples();
    let input: Vec<f32> = (0..200 * block)
        .map(|n| 0.5 * (std::f32::consts::TAU * 220.0 * n as f32 / sample_rate).sin())
        .collect();
    let mut output = input.clone();
    let started = std::time::Instant::now();
    let mut stalled_for = Duration::ZERO;
    for (index, chunk) in output.chunks_mut(block).enumerate() {
        match index {
            50 => stall.store(true, Ordering::Relaxed),
            100 => {
                stalled_for = started.elapsed();
                let stuck_at = engine.stats().worker_progress.load(Ordering::Acquire);
                stall.store(false, Ordering::Relaxed);
                // The worker comes back while the host renders on (here the host would race
                // through the next blocks in microseconds, before the worker is even scheduled).
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while engine.stats().worker_progress.load(Ordering::Acquire) == stuck_at
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            _ => {}
        }
        engine.process(&mut [chunk], Timing::Offline, || WET);
    }
    let stats = engine.stats();
    // Fifty stuck blocks cost one wait, not fifty (the old engine waited every block).
    assert!(
        stalled_for < 4 * wait_limit,
        "stuck for {stalled_for:?} with a {wait_limit:?} limit"
    );
    assert_eq!(stats.offline_stalls.load(Ordering::Relaxed), 1);
    assert!(stats.late_blocks.load(Ordering::Relaxed) > 10);
    let dry = |n: usize| input[n - latency];
    let max_deviation = |range: std::ops::Range<usize>, expected: &dyn Fn(usize) -> f32| {
        range
            .map(|n| (output[n] - expected(n)).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(
        max_deviation(80 * block..100 * block, &dry) < 1e-6,
        "stuck → dry"
    );
    // Once the worker has caught up, offline waiting (and so every hop wet) resumes.
    assert!(
        max_deviation(150 * block..200 * block, &|n| 0.5 * dry(n)) < 1e-6,
        "wet again after the stall"
    );
}

/// A processor whose output is subnormal (as a model's can be: the worker has no flush-to-zero).
struct Subnormal;

impl HopProcessor for Subnormal {
    fn hop_size(&self) -> usize {
        64
    }
    fn latency_samples(&self) -> usize {
        0
    }
    fn process_hop(&mut self, _input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        for out in output.iter_mut() {
            out.fill(f32::MIN_POSITIVE / 4.0);
        }
    }
    fn reset(&mut self) {}
}

#[test]
fn no_subnormal_sample_leaves_the_engine() {
    let config = EngineConfig {
        sample_rate: 48_000.0,
        channels: 2,
        max_block_size: 128,
    };
    let (mut engine, _worker) = audio::start(config, Subnormal).expect("worker");
    let input = vec![vec![f32::MIN_POSITIVE / 8.0; 4_800]; 2];
    let output = offline::render(&mut engine, &input, 128, WET);
    let subnormal = output.iter().flatten().filter(|x| x.is_subnormal()).count();
    assert_eq!(subnormal, 0, "subnormal output samples");
}
