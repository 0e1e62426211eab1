//! Musical sanity of the shipped continuation model (`models/continuo-chorales`) on chorales
//! it never saw: `tests/fixtures/chorales-held-out/` are files the trainer held out (the
//! sha256 of the file name falls in the first 10 of 100 buckets). The first two bars are the
//! prompt; two bars are generated.

mod common;

use std::path::{Path, PathBuf};

use continuo::midi::{detect_key, Note};
use continuo::model::{load_model, BackendChoice, ModelKind};
use continuo::phrase::generate::{generate, GenerationSettings, Rng, TokenModel};

fn model() -> TokenModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/continuo-chorales.json");
    let loaded = load_model(&path, ModelKind::Continuation, BackendChoice::Tract)
        .expect("shipped default model");
    TokenModel::new(loaded).expect("token-step contract")
}

fn held_out() -> Vec<(PathBuf, Vec<Note>)> {
    common::fixture_songs("chorales-held-out")
        .into_iter()
        .map(|(path, notes)| {
            let prompt = notes.into_iter().filter(|n| n.start_beat < 8.0).collect();
            (path, prompt)
        })
        .collect()
}

fn continue_chorale(
    model: &mut TokenModel,
    prompt: &[Note],
    settings: &GenerationSettings,
    seed: u64,
) -> Vec<Note> {
    let mut notes = Vec::new();
    generate(model, prompt, 8.0, settings, &mut Rng::new(seed), |n| {
        notes.push(n)
    })
    .expect("generate");
    notes
}

#[test]
fn key_lock_keeps_generated_pitches_in_the_detected_key() {
    let mut model = model();
    let (mut in_key, mut total) = (0, 0);
    for (path, prompt) in held_out() {
        let scale = detect_key(&prompt)
            .unwrap_or_else(|| panic!("{}: no key", path.display()))
            .scale();
        let settings = GenerationSettings {
            bars: 2,
            scale: Some(scale),
            ..GenerationSettings::default()
        };
        for seed in 1..=2 {
            for note in continue_chorale(&mut model, &prompt, &settings, seed) {
                total += 1;
                in_key += usize::from(scale.contains(note.pitch));
            }
        }
    }
    assert!(total > 100, "the model writes notes: {total}");
    let share = in_key as f64 / total as f64;
    eprintln!("key lock: {in_key} of {total} generated pitches in the detected key");
    assert!(
        share >= 0.95,
        "{:.1} % of {total} pitches in key",
        share * 100.0
    );
}

#[test]
fn density_follows_the_parameter_within_half() {
    let mut model = model();
    for target in [1.0f32, 2.0, 4.0] {
        let settings = GenerationSettings {
            bars: 2,
            density_notes_per_beat: Some(target),
            ..GenerationSettings::default()
        };
        let mut notes = 0;
        let mut beats = 0.0;
        for (_, prompt) in held_out() {
            notes += continue_chorale(&mut model, &prompt, &settings, 7).len();
            beats += 8.0;
        }
        let density = notes as f64 / beats;
        let target = f64::from(target);
        eprintln!("density: asked {target} notes/beat, got {density:.2}");
        assert!(
            (0.5 * target..=1.5 * target).contains(&density),
            "asked for {target} notes/beat, got {density:.2}"
        );
    }
}

#[test]
fn a_seed_always_gives_the_same_continuation() {
    let mut model = model();
    let settings = GenerationSettings {
        bars: 2,
        temperature: 1.0,
        ..GenerationSettings::default()
    };
    for (_, prompt) in held_out().iter().take(3) {
        let first = continue_chorale(&mut model, prompt, &settings, 42);
        assert_eq!(first, continue_chorale(&mut model, prompt, &settings, 42));
        assert_ne!(first, continue_chorale(&mut model, prompt, &settings, 43));
    }
}
