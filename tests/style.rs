//! Continuo Style's signal path with the shipped timbre models, through the real engine:
//! latency (exact on the dry path, onset-aligned on the wet path), pitch shift, morph, hot
//! swap and bad input.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use continuo::dsp::analysis::analyze;
use continuo::dsp::metrics::multiscale_spectral_distance;
use continuo::engine::audio::{
    self, AudioCommand, AudioEngine, EngineConfig, HopProcessor, MixGain, Timing,
};
use continuo::engine::offline;
use continuo::engine::worker::WorkerHandle;
use continuo::model::{BackendChoice, ModelDirs};
use continuo::style::features::{timbre_analysis_config, F0_MIN_HZ};
use continuo::style::voice::GATE_OFF_DB;
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleSettings,
    StyleStatus,
};

const RATES: [f32; 3] = [44_100.0, 48_000.0, 96_000.0];
const MODES: [LatencyMode; 2] = [LatencyMode::LowLatency, LatencyMode::Quality];

fn dirs() -> ModelDirs {
    ModelDirs::new([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")])
}

fn processor(
    rate: f32,
    mode: LatencyMode,
    a: &str,
    b: Option<&str>,
    settings: StyleSettings,
) -> (StyleProcessor, Arc<StyleStatus>) {
    processor_from_floor(rate, mode, a, b, settings, None)
}

/// [`processor`], its analysis tracking from `floor_hz` instead of the models' own floor (as a
/// running plugin keeps its analysis when a model with another floor is chosen).
fn processor_from_floor(
    rate: f32,
    mode: LatencyMode,
    a: &str,
    b: Option<&str>,
    settings: StyleSettings,
    floor_hz: Option<f32>,
) -> (StyleProcessor, Arc<StyleStatus>) {
    let shared = Arc::new(SharedStyleSettings::default());
    shared.store(&settings);
    let status = Arc::new(StyleStatus::default());
    let choice = StyleChoice {
        a: a.into(),
        b: b.map(Into::into),
    };
    let mut voice = load_voice(
        &choice,
        &dirs(),
        BackendChoice::Auto,
        mode,
        shared,
        status.clone(),
    )
    .expect("shipped model loads");
    if let Some(floor) = floor_hz {
        voice.set_f0_floor(floor).expect("a floor Style tracks");
    }
    let p = StyleProcessor::new(rate, 1, mode, Some(voice)).expect("processor");
    (p, status)
}

/// A mono engine at `rate` driven with blocks of up to `block` samples.
fn start_engine(p: StyleProcessor, rate: f32, block: usize) -> (AudioEngine, StyleWorker) {
    audio::start(
        EngineConfig {
            sample_rate: rate,
            channels: 1,
            max_block_size: block,
        },
        p,
    )
    .expect("engine")
}

type StyleWorker = WorkerHandle<AudioCommand<StyleProcessor>>;

/// Renders mono `input` offline through the engine (latency compensated).
fn render(p: StyleProcessor, rate: f32, block: usize, input: &[f32]) -> Vec<f32> {
    let (mut engine, _worker) = start_engine(p, rate, block);
    let out = offline::render(&mut engine, &[input.to_vec()], block, MixGain::WET);
    assert_eq!(engine.stats().late_blocks.load(Ordering::Relaxed), 0);
    out.into_iter().next().expect("one channel")
}

/// Silence, then a 440 Hz tone at −12 dBFS from `onset` on.
fn tone_burst(rate: f32, onset: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|n| {
            if n < onset {
                0.0
            } else {
                0.25 * (std::f32::consts::TAU * 440.0 * (n - onset) as f32 / rate).sin()
            }
        })
        .collect()
}

fn melody_at(rate: f32) -> Vec<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/melody_16k.wav");
    let audio = continuo::wav::read(&path).expect("fixture");
    continuo::dsp::resample::StreamingResampler::resample(&audio.channels[0], 16_000, rate as u32)
        .expect("resample")
}

/// Where a signal's 2 ms RMS envelope first reaches half its steady level (the RMS of its
/// last third), searching from sample `from`.
fn attack_of(signal: &[f32], rate: f32, from: usize) -> usize {
    let steady = rms(&signal[signal.len() * 2 / 3..]);
    let window = (rate * 0.002) as usize;
    signal[from..]
        .windows(window)
        .position(|w| rms(w) >= 0.5 * steady)
        .map(|start| from + start + window / 2)
        .expect("an attack")
}

/// Mean time (ms) from a tone's onset to its restyled attack at `rate`, over four onset phases
/// 1 ms apart: the voice analyses 4 ms frames, so where an onset falls in a frame moves the
/// attack by up to a frame; averaging over phases takes that out. A first note (0.1–0.4 s)
/// lets the loudness follower settle (it holds its gain through the rest that follows).
fn mean_attack_ms(rate: f32, mode: LatencyMode) -> f32 {
    let mut total = 0.0;
    for phase in 0..4 {
        let onset = ((0.6 + 0.001 * phase as f32) * rate) as usize;
        let first_note = ((0.1 * rate) as usize)..((0.4 * rate) as usize);
        let mut input = tone_burst(rate, onset, (1.2 * rate) as usize);
        input[first_note.clone()].copy_from_slice(&tone_burst(rate, 0, first_note.len()));
        let (p, status) = processor(rate, mode, "continuo-violin", None, Default::default());
        let out = render(p, rate, 256, &input);
        assert_eq!(status.model_errors.load(Ordering::Relaxed), 0);
        let from = onset - (0.05 * rate) as usize;
        total += 1000.0 * (attack_of(&out, rate, from) as f32 - onset as f32) / rate;
    }
    total / 4.0
}

fn rms(signal: &[f32]) -> f32 {
    (signal.iter().map(|y| y * y).sum::<f32>() / signal.len().max(1) as f32).sqrt()
}

#[test]
fn dry_path_impulse_lands_exactly_at_the_reported_latency() {
    // The no-model processor is what plays while a model loads or after a failure; every mode,
    // rate and block size must report its latency to the sample.
    for rate in RATES {
        for mode in MODES {
            for block in [1usize, 64, 441, 512, 2048] {
                let p = StyleProcessor::new(rate, 1, mode, None).expect("processor");
                let (mut engine, _worker) = start_engine(p, rate, block);
                let latency = engine.latency_samples();
                let len = latency + 3 * block + 10;
                let mut signal = vec![0.0f32; len];
                signal[5] = 1.0;
                for start in (0..len).step_by(block) {
                    let end = (start + block).min(len);
                    engine.process(&mut [&mut signal[start..end]], Timing::Offline, || {
                        MixGain::WET
                    });
                }
                let at = signal.iter().position(|&y| (y - 1.0).abs() < 1e-6);
                assert_eq!(at, Some(5 + latency), "{rate} Hz {mode:?} block {block}");
            }
        }
    }
}

#[test]
fn restyled_attack_is_where_the_native_voice_puts_it_at_every_rate_and_mode() {
    // The reported latency must cancel the resampling chain exactly: at any host rate the
    // restyled attack (relative to the input onset, after latency compensation) must be where
    // the voice puts it when it runs natively at 16 kHz (no resampling, latency = the voice's
    // own). The attack itself takes the model several ms (a bowed attack is timbre). Bar
    // ±2 ms, half a hop: a latency error would be whole hops (4 ms) or resampler delays, which
    // the pulse calibration pins to a sample (the dry-path test checks that exactly). Measured:
    // 0.0–0.2 ms in quality mode, 0.0–0.5 ms at 44.1 kHz; in low-latency mode at 48/96 kHz (FFT
    // resamplers, 16-sample up-sampler chunks) 1.1–1.8 ms early for tone levels from -27 to
    // -12 dBFS. That offset is not explained yet. Ruled out by experiment: the resampled input
    // (the tone resampled offline gives the native attack), the chain's short low-latency
    // chunks (4 ms host hops or 64-sample up-sampler chunks leave -1.35/-1.54 ms) and onset-phase
    // sampling (16 phases 0.25 ms apart leave -1.36 ms).
    let mut report = Vec::new();
    let mut failed = false;
    for mode in MODES {
        let native = mean_attack_ms(16_000.0, mode);
        report.push(format!("{mode:?} 16 kHz native: attack at {native:+.2} ms"));
        for rate in RATES {
            let attack = mean_attack_ms(rate, mode);
            let error = attack - native;
            report.push(format!(
                "{mode:?} {rate} Hz: attack at {attack:+.2} ms ({error:+.2} ms)"
            ));
            failed |= error.abs() > 2.0;
        }
    }
    println!("{}", report.join("\n"));
    assert!(!failed, "{report:#?}");
}

#[test]
fn restyled_melody_keeps_its_pitch_and_pitch_shift_moves_it() {
    let rate = 48_000.0;
    let input = melody_at(rate);
    let median_f0 = |signal: &[f32]| {
        let a = analyze(signal, rate, &timbre_analysis_config(F0_MIN_HZ)).expect("analysis");
        let mut f0: Vec<f32> = a
            .frames
            .iter()
            .filter(|f| f.voicing >= 0.5)
            .map(|f| f.f0_hz)
            .collect();
        f0.sort_by(f32::total_cmp);
        f0[f0.len() / 2]
    };
    let f0_in = median_f0(&input);
    for (shift, octave, ratio) in [(0.0, 0.0, 1.0), (7.0, 0.0, 1.4983), (0.0, -1.0, 0.5)] {
        let settings = StyleSettings {
            pitch_shift_st: shift,
            octave,
            ..Default::default()
        };
        let (p, _) = processor(
            rate,
            LatencyMode::Quality,
            "continuo-violin",
            None,
            settings,
        );
        let out = render(p, rate, 512, &input);
        assert!(out.iter().all(|y| y.is_finite()));
        let f0_out = median_f0(&out);
        let error_cents = 1200.0 * (f0_out / (f0_in * ratio)).log2();
        assert!(
            error_cents.abs() < 30.0,
            "shift {shift} st, octave {octave}: {f0_in} Hz → {f0_out} Hz ({error_cents:+.1} cents)"
        );
        // Restyled, not copied.
        assert!(multiscale_spectral_distance(&input, &out) > 0.1);
    }
}

#[test]
fn morph_blends_from_style_a_to_style_b() {
    let rate = 16_000.0;
    let input = melody_at(rate);
    let run = |b: Option<&str>, morph: f32, a: &str| {
        // Auto Level brings the input to style A's training level, so B alone would hear
        // another level than B in the morph.
        let settings = StyleSettings {
            morph,
            gate_db: GATE_OFF_DB,
            auto_level: false,
            ..Default::default()
        };
        let (p, _) = processor(rate, LatencyMode::Quality, a, b, settings);
        render(p, rate, 256, &input)
    };
    // Two models trained from the same f0 floor (130 Hz): a morph analyses from the lower floor
    // and holds A's floor as the f0 before the first note, so with another floor B alone would
    // be analysed and started differently from B in the morph.
    let (a, b) = ("continuo-flute", "continuo-trumpet");
    let flute = run(None, 0.0, a);
    let trumpet = run(None, 0.0, b);
    let at_0 = run(Some(b), 0.0, a);
    let at_half = run(Some(b), 0.5, a);
    let at_1 = run(Some(b), 1.0, a);
    let d = multiscale_spectral_distance;
    assert!(at_0 == flute, "morph 0 is style A exactly");
    assert!(
        d(&trumpet, &at_1) < 0.05,
        "morph 1 ≈ style B: {}",
        d(&trumpet, &at_1)
    );
    let (to_a, to_b) = (d(&flute, &at_half), d(&trumpet, &at_half));
    assert!(
        to_a > 0.05 && to_b > 0.05,
        "half-way is neither: {to_a} {to_b}"
    );
    assert!(
        d(&flute, &trumpet) > to_a.max(to_b),
        "half-way lies between"
    );
}

#[test]
fn hot_swap_to_another_style_is_accepted_and_click_free() {
    let rate = 48_000.0;
    let input = melody_at(rate);
    let (violin, _) = processor(
        rate,
        LatencyMode::Quality,
        "continuo-violin",
        None,
        Default::default(),
    );
    // Tracked from the violin's floor, as the plugin's loader does when the floors differ:
    // the engine refuses a replacement with another latency.
    let (flute, _) = processor_from_floor(
        rate,
        LatencyMode::Quality,
        "continuo-flute",
        None,
        Default::default(),
        Some(violin.f0_floor_hz()),
    );
    let mut flute = Some(flute);
    let block = 256;
    let (mut engine, worker) = start_engine(violin, rate, block);
    let mut out = input.clone();
    let swap_at = out.len() / 2 / block * block;
    let mut max_step = 0.0f32;
    let mut last = 0.0f32;
    for start in (0..out.len()).step_by(block) {
        if start == swap_at {
            let next = flute.take().expect("swapped once");
            assert!(worker.send(AudioCommand::Replace(next)));
        }
        let end = (start + block).min(out.len());
        engine.process(&mut [&mut out[start..end]], Timing::Offline, || {
            MixGain::WET
        });
        for &y in &out[start..end] {
            max_step = max_step.max((y - last).abs());
            last = y;
        }
    }
    let stats = engine.stats();
    assert_eq!(stats.swaps_completed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.swaps_rejected.load(Ordering::Relaxed), 0);
    assert!(out.iter().all(|y| y.is_finite()));
    // A restyled line's own largest step is well below 0.5; a dropout or hard cut would not be.
    assert!(max_step < 0.5, "largest sample step {max_step}");
}

#[test]
fn silence_noise_chords_and_nan_give_finite_bounded_output() {
    let rate = 48_000.0;
    let len = rate as usize;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let white: Vec<f32> = (0..len).map(|_| 0.3 * noise()).collect();
    let chord: Vec<f32> = (0..len)
        .map(|n| {
            [261.6f32, 329.6, 392.0]
                .iter()
                .map(|f| 0.2 * (std::f32::consts::TAU * f * n as f32 / rate).sin())
                .sum()
        })
        .collect();
    let mut with_nan = tone_burst(rate, 1000, len);
    for n in (0..len).step_by(997) {
        with_nan[n] = if n % 2 == 0 { f32::NAN } else { f32::INFINITY };
    }
    let cases = [
        ("silence", vec![0.0; len]),
        ("white noise", white),
        ("C major chord", chord),
        ("tone with NaN/Inf", with_nan),
    ];
    for (name, input) in cases {
        let (p, status) = processor(
            rate,
            LatencyMode::Quality,
            "continuo-violin",
            None,
            Default::default(),
        );
        let out = render(p, rate, 512, &input);
        assert!(
            out.iter().all(|y| y.is_finite()),
            "{name}: non-finite output"
        );
        let peak = out.iter().fold(0.0f32, |m, y| m.max(y.abs()));
        assert!(peak <= 1.0, "{name}: peak {peak}");
        assert_eq!(status.model_errors.load(Ordering::Relaxed), 0, "{name}");
        match name {
            "silence" => assert!(peak < 1e-6, "silence in, silence out: {peak}"),
            // Unvoiced input closes the gate instead of being synthesised as noise.
            "white noise" => assert!(rms(&out) < 0.1 * rms(&input), "{name}: {}", rms(&out)),
            _ => {}
        }
    }
}

#[test]
fn missing_or_wrong_models_fail_with_the_reason() {
    let shared = Arc::new(SharedStyleSettings::default());
    let status = Arc::new(StyleStatus::default());
    let load = |name: &str| {
        load_voice(
            &StyleChoice {
                a: name.into(),
                b: None,
            },
            &dirs(),
            BackendChoice::Auto,
            LatencyMode::Quality,
            shared.clone(),
            status.clone(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let missing = load("no-such-style");
    assert!(
        missing.contains("no-such-style") && missing.contains("not found"),
        "{missing}"
    );
    let wrong_kind = load("continuo-chorales");
    assert!(
        wrong_kind.contains("continuation") && wrong_kind.contains("timbre"),
        "{wrong_kind}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{ not json").expect("write");
    let message = load(broken.to_str().expect("utf-8 path"));
    assert!(message.contains("broken.json"), "{message}");
}

#[test]
fn a_dry_processor_has_the_latency_of_a_model_at_its_floor() {
    // An empty slot or a failed load plays the dry path at the running floor's latency, so the
    // latency the host was told stays true; it must be exactly what the model would have.
    for rate in RATES {
        for mode in MODES {
            let (p, _) = processor(rate, mode, "continuo-violin", None, Default::default());
            let dry = StyleProcessor::dry(rate, 1, mode, p.f0_floor_hz()).expect("dry");
            assert_eq!(
                (dry.hop_size(), dry.latency_samples()),
                (p.hop_size(), p.latency_samples()),
                "{rate} {mode:?}"
            );
        }
    }
}
