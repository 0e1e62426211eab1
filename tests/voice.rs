//! Continuo Voice through the real engine with the shipped timbre models: notes start on their
//! sample, sound at their pitch, grow louder with velocity; chords, stealing, mono/legato,
//! pitch bend and a model switch mid-note stay clean.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use continuo::dsp::analysis::analyze;
use continuo::engine::audio::{MixGain, Timing};
use continuo::instrument::{
    load_bank, render_notes, InstrumentEngine, NoteAction, PlayMode, ScheduledNote,
    SharedVoiceSettings, VoiceBank, VoiceSettings,
};
use continuo::model::{BackendChoice, ModelDirs};
use continuo::style::features::{timbre_analysis_config, F0_MIN_HZ};
use continuo::style::{StyleChoice, StyleStatus};

const RATE: u32 = 48_000;

fn dirs() -> ModelDirs {
    ModelDirs::new([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")])
}

fn bank(name: &str, rate: u32) -> VoiceBank {
    let choice = StyleChoice {
        a: name.into(),
        b: None,
    };
    let status = Arc::new(StyleStatus::default());
    let (bank, refused) =
        load_bank(&choice, &dirs(), BackendChoice::Auto, rate, status).expect("shipped model");
    assert!(refused.is_none());
    bank
}

fn engine(name: &str, rate: u32, settings: VoiceSettings) -> InstrumentEngine {
    engine_with_status(name, rate, settings, Arc::default())
}

fn engine_with_status(
    name: &str,
    rate: u32,
    settings: VoiceSettings,
    status: Arc<StyleStatus>,
) -> InstrumentEngine {
    InstrumentEngine::start(
        rate,
        1,
        512,
        Some(bank(name, rate)),
        Arc::new(SharedVoiceSettings::new(&settings)),
        status,
    )
    .expect("worker starts")
}

fn note(note: u8, velocity: f32, start_s: f32, end_s: f32) -> ScheduledNote {
    ScheduledNote {
        note,
        velocity,
        start: (start_s * RATE as f32) as usize,
        end: (end_s * RATE as f32) as usize,
    }
}

fn render(engine: &mut InstrumentEngine, notes: &[ScheduledNote], seconds: f32) -> Vec<f32> {
    let frames = (seconds * RATE as f32) as usize;
    let out = render_notes(engine, notes, frames, 256, 1).remove(0);
    assert!(out.iter().all(|x| x.is_finite()));
    assert_eq!(engine.engine_stats().late_blocks.load(Ordering::Relaxed), 0);
    out
}

fn rms_db(x: &[f32]) -> f32 {
    let power = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    10.0 * power.max(1e-20).log10()
}

/// Median f0 (Hz) of the voiced frames between `from` and `to` seconds of `x` (at [`RATE`]).
fn median_f0(x: &[f32], from: f32, to: f32) -> f32 {
    median_f0_at(x, RATE, from, to)
}

/// [`median_f0`] of audio at `rate` Hz.
fn median_f0_at(x: &[f32], rate: u32, from: f32, to: f32) -> f32 {
    let at = |s: f32| (s * rate as f32) as usize;
    let analysis = analyze(
        &x[at(from)..at(to)],
        rate as f32,
        &timbre_analysis_config(F0_MIN_HZ),
    )
    .expect("analysis");
    let mut f0: Vec<f32> = analysis
        .frames
        .iter()
        .filter(|f| f.voicing >= 0.5)
        .map(|f| f.f0_hz)
        .collect();
    assert!(f0.len() > 10, "voiced frames in {from}–{to} s");
    f0.sort_by(f32::total_cmp);
    f0[f0.len() / 2]
}

fn cents(f: f32, note: u8) -> f32 {
    1200.0 * (f / continuo::dsp::midi_to_hz(f32::from(note))).log2()
}

#[test]
fn notes_sound_at_their_pitch_from_their_own_sample() {
    let mut e = engine("continuo-violin", RATE, VoiceSettings::default());
    // A4, then E5 starting on an odd sample inside a block, then G3.
    let notes = [
        note(69, 0.8, 0.1, 0.6),
        note(76, 0.8, 0.8123, 1.3),
        note(55, 0.8, 1.7, 2.2),
    ];
    let out = render(&mut e, &notes, 2.6);
    for n in &notes {
        // Nothing before the note-on (the previous note has died away), sound right after it.
        let before = &out[n.start - 2400..n.start];
        assert!(
            rms_db(before) < -90.0 || n.start < 48_000,
            "silence before {}",
            n.note
        );
        let onset = out[n.start..]
            .iter()
            .position(|x| x.abs() > 1e-4)
            .expect("the note sounds");
        assert!(onset < 480, "note {} starts {onset} samples late", n.note);
        let f0 = median_f0(
            &out,
            n.start as f32 / RATE as f32 + 0.15,
            n.end as f32 / RATE as f32,
        );
        let off = cents(f0, n.note);
        assert!(
            off.abs() < 10.0,
            "note {}: {f0:.1} Hz is {off:.1} cents off",
            n.note
        );
    }
    assert!(
        out[..notes[0].start].iter().all(|&x| x == 0.0),
        "silent before the first note"
    );
    assert_eq!(e.stats().notes_played.load(Ordering::Relaxed), 3);
}

#[test]
fn louder_with_velocity() {
    let mut levels = Vec::new();
    for velocity in [0.2, 0.4, 0.6, 0.8, 1.0] {
        let mut e = engine("continuo-violin", RATE, VoiceSettings::default());
        let out = render(&mut e, &[note(67, velocity, 0.05, 0.8)], 0.9);
        levels.push(rms_db(
            &out[(0.3 * RATE as f32) as usize..(0.8 * RATE as f32) as usize],
        ));
    }
    assert!(levels.windows(2).all(|w| w[1] > w[0] + 1.0), "{levels:?}");
}

#[test]
fn chords_steal_beyond_the_polyphony_and_stay_bounded() {
    let settings = VoiceSettings {
        polyphony: 4,
        ..VoiceSettings::default()
    };
    let mut e = engine("continuo-violin", RATE, settings);
    // Twelve notes at once, then a three-note chord.
    let mut notes: Vec<ScheduledNote> = (0..12).map(|i| note(60 + i, 0.9, 0.1, 0.6)).collect();
    // After the twelve have died away (released at 0.6 s, 250 ms release): nothing to steal.
    notes.extend([
        note(60, 0.7, 1.0, 1.4),
        note(64, 0.7, 1.0, 1.4),
        note(67, 0.7, 1.0, 1.4),
    ]);
    let out = render(&mut e, &notes, 1.6);
    assert_eq!(e.stats().voices_stolen.load(Ordering::Relaxed), 8);
    let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak < 2.0, "peak {peak}");
    // A stolen voice fades (8 ms) instead of stopping: no step between samples.
    let biggest_step = out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(biggest_step < 0.25, "step {biggest_step}");
    assert!(rms_db(&out[(1.1 * RATE as f32) as usize..(1.3 * RATE as f32) as usize]) > -40.0);
}

#[test]
fn legato_glides_without_a_new_attack_and_returns_to_the_held_note() {
    let settings = VoiceSettings {
        mode: PlayMode::Legato,
        glide_ms: 20.0,
        ..VoiceSettings::default()
    };
    let mut e = engine("continuo-violin", RATE, settings);
    // 60 held 0.1–1.5 s; 67 pressed 0.6–1.0 s over it.
    let out = render(
        &mut e,
        &[note(60, 0.8, 0.1, 1.5), note(67, 0.8, 0.6, 1.0)],
        1.6,
    );
    assert_eq!(e.stats().notes_played.load(Ordering::Relaxed), 2);
    assert!(cents(median_f0(&out, 0.3, 0.6), 60).abs() < 10.0);
    assert!(cents(median_f0(&out, 0.75, 1.0), 67).abs() < 10.0);
    assert!(cents(median_f0(&out, 1.15, 1.45), 60).abs() < 10.0);
    // One line all along: the level never drops out between the notes.
    let window = (0.01 * RATE as f32) as usize;
    let from = (0.3 * RATE as f32) as usize;
    let to = (1.45 * RATE as f32) as usize;
    let quietest = out[from..to]
        .chunks(window)
        .map(rms_db)
        .fold(f32::MAX, f32::min);
    assert!(quietest > -45.0, "dropout to {quietest} dB");
}

#[test]
fn pitch_bend_moves_the_pitch_by_the_bend_range() {
    let mut e = engine("continuo-violin", RATE, VoiceSettings::default());
    // Blocks are 10 ms: the note at 0.1 s, bent fully down at 0.6 s.
    let out = &play_events(&mut e, 1.2, |i| match i {
        10 => vec![NoteAction::On {
            note: 64,
            velocity: 0.8,
        }],
        60 => vec![NoteAction::Bend(-1.0)],
        _ => Vec::new(),
    });
    assert!(cents(median_f0(out, 0.3, 0.6), 64).abs() < 10.0);
    assert!(
        cents(median_f0(out, 0.75, 1.2), 62).abs() < 10.0,
        "bent down 2 semitones"
    );
}

#[test]
fn a_model_switch_mid_note_crossfades_and_keeps_the_note() {
    let mut e = engine("continuo-violin", RATE, VoiceSettings::default());
    let frames = (1.4 * RATE as f32) as usize;
    let latency = e.latency_samples();
    let mut out = vec![0.0f32; frames + latency];
    let flute = bank("continuo-flute", RATE);
    let mut flute = Some(flute);
    let block = 512;
    for (i, chunk) in out.chunks_mut(block).enumerate() {
        let t = i * block;
        if i == 10 {
            e.send(
                7,
                NoteAction::On {
                    note: 72,
                    velocity: 0.8,
                },
            );
        }
        if t >= (0.6 * RATE as f32) as usize {
            if let Some(bank) = flute.take() {
                assert!(e.switch(bank));
            }
        }
        e.process(&mut [chunk], Timing::Offline, || MixGain::WET);
    }
    let out = &out[latency..];
    assert!(cents(median_f0(out, 0.9, 1.35), 72).abs() < 10.0);
    let window = (0.01 * RATE as f32) as usize;
    let from = (0.3 * RATE as f32) as usize;
    let quietest = out[from..]
        .chunks(window)
        .map(rms_db)
        .fold(f32::MAX, f32::min);
    assert!(
        quietest > -45.0,
        "the note carried on through the switch: {quietest} dB"
    );
    let biggest_step = out
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max);
    assert!(biggest_step < 0.25, "step {biggest_step}");
}

#[test]
fn notes_at_44k1_and_96k_sound_at_their_pitch() {
    for rate in [44_100u32, 96_000] {
        let mut e = InstrumentEngine::start(
            rate,
            2,
            333,
            Some(bank("continuo-violin", rate)),
            Arc::new(SharedVoiceSettings::default()),
            Arc::new(StyleStatus::default()),
        )
        .expect("worker");
        let at = |s: f32| (s * rate as f32) as usize;
        let n = ScheduledNote {
            note: 71,
            velocity: 0.8,
            start: at(0.1),
            end: at(0.7),
        };
        let out = render_notes(&mut e, &[n], at(0.8), 333, 2);
        assert_eq!(out[0], out[1], "both channels");
        let off = cents(median_f0_at(&out[0], rate, 0.3, 0.7), 71);
        assert!(off.abs() < 10.0, "{rate} Hz: {off} cents");
    }
}

/// Plays `events` (block index → actions at offset 0) for `seconds` in offline blocks of 480.
fn play_events(
    e: &mut InstrumentEngine,
    seconds: f32,
    events: impl Fn(usize) -> Vec<NoteAction>,
) -> Vec<f32> {
    let block = 480;
    let latency = e.latency_samples();
    let mut out = vec![0.0f32; (seconds * RATE as f32) as usize + latency];
    for (i, chunk) in out.chunks_mut(block).enumerate() {
        for action in events(i) {
            e.send(0, action);
        }
        e.process(&mut [chunk], Timing::Offline, || MixGain::WET);
    }
    out.drain(..latency);
    out
}

#[test]
fn the_sustain_pedal_holds_released_notes_until_it_lifts() {
    let mut e = engine("continuo-violin", RATE, VoiceSettings::default());
    // Blocks are 10 ms: pedal down at 0.05 s, note 0.1–0.3 s, pedal up at 0.8 s.
    let out = play_events(&mut e, 1.4, |i| match i {
        5 => vec![NoteAction::Sustain(true)],
        10 => vec![NoteAction::On {
            note: 67,
            velocity: 0.8,
        }],
        30 => vec![NoteAction::Off { note: 67 }],
        80 => vec![NoteAction::Sustain(false)],
        _ => Vec::new(),
    });
    let level = |from: f32, to: f32| {
        rms_db(&out[(from * RATE as f32) as usize..(to * RATE as f32) as usize])
    };
    assert!(
        level(0.6, 0.75) > -40.0,
        "held by the pedal: {} dB",
        level(0.6, 0.75)
    );
    assert!(
        level(1.2, 1.4) < -90.0,
        "released when it lifts: {} dB",
        level(1.2, 1.4)
    );
}

#[test]
fn notes_outside_the_trained_range_keep_their_pitch_and_are_counted() {
    let status = Arc::new(StyleStatus::default());
    let mut e = engine_with_status(
        "continuo-violin",
        RATE,
        VoiceSettings::default(),
        status.clone(),
    );
    // D3 (147 Hz) is inside the violin model's 130–2000 Hz; C2 (65 Hz) and C8 (4186 Hz) are not.
    let out = render(
        &mut e,
        &[
            note(50, 0.8, 0.05, 0.5),
            note(36, 0.8, 0.6, 1.1),
            note(108, 0.8, 1.2, 1.6),
        ],
        1.8,
    );
    assert_eq!(e.stats().notes_outside_range.load(Ordering::Relaxed), 2);
    let message = status.message();
    assert!(
        message.contains("note 36 (65 Hz)") && message.contains("130–2000 Hz"),
        "the status says why: {message}"
    );
    assert!(rms_db(&out[(0.8 * RATE as f32) as usize..(1.0 * RATE as f32) as usize]) > -50.0);
    assert!(rms_db(&out[(1.3 * RATE as f32) as usize..(1.5 * RATE as f32) as usize]) > -50.0);
    // C2 sounds at 65 Hz: its spectrum peaks at a harmonic of 65.4 Hz, nothing below it.
    let part = &out[(0.8 * RATE as f32) as usize..(1.0 * RATE as f32) as usize];
    let bin_hz = RATE as f32 / part.len() as f32;
    let power_at = |hz: f32| {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, x) in part.iter().enumerate() {
            let phase = std::f64::consts::TAU * f64::from(hz) * n as f64 / f64::from(RATE);
            re += f64::from(*x) * phase.cos();
            im -= f64::from(*x) * phase.sin();
        }
        re * re + im * im
    };
    let f0 = continuo::dsp::midi_to_hz(36.0);
    assert!(bin_hz < 10.0);
    let fundamental = power_at(f0) + power_at(2.0 * f0);
    let between = power_at(1.5 * f0) + power_at(0.5 * f0);
    assert!(
        fundamental > 100.0 * between,
        "harmonics of 65 Hz: {fundamental} vs {between}"
    );
}
