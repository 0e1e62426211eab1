//! Continuation generation with a real token-step ONNX model (random weights, generated here):
//! the constraints hold whatever the model says, and a seed makes it repeatable.

mod common;

use std::path::{Path, PathBuf};

use continuo::midi::key::Scale;
use continuo::midi::{Note, VOCAB_VERSION};
use continuo::model::{load_model, BackendChoice, Manifest, ModelKind};
use continuo::phrase::generate::{generate, GenerateError, GenerationSettings, Rng, TokenModel};

/// A random token model declaring `vocabulary` as its vocabulary version.
fn random_model(dir: &Path, vocabulary: &str) -> PathBuf {
    let path = common::random_continuation_model(dir, "random", 42, 32);
    let mut manifest = Manifest::load(&path).expect("manifest");
    if let Some(info) = manifest.vocabulary.as_mut() {
        info.version = vocabulary.into();
    }
    manifest.save(&path).expect("save");
    path
}

fn token_model(path: &Path) -> TokenModel {
    let loaded = load_model(path, ModelKind::Continuation, BackendChoice::Tract).expect("load");
    TokenModel::new(loaded).expect("token-step contract")
}

fn prompt() -> Vec<Note> {
    // C major arpeggio over two bars.
    [60u8, 64, 67, 72, 67, 64, 60, 55]
        .iter()
        .enumerate()
        .map(|(i, &pitch)| Note::new(pitch, 90, 0, i as f64, i as f64 + 0.9))
        .collect()
}

fn run(model: &mut TokenModel, settings: &GenerationSettings, seed: u64) -> Vec<Note> {
    let mut notes = Vec::new();
    generate(
        model,
        &prompt(),
        8.0,
        settings,
        &mut Rng::new(seed),
        |note| notes.push(note),
    )
    .expect("generate");
    notes
}

#[test]
fn constraints_hold_and_seeds_repeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let scale = Scale::major(0);
    let settings = GenerationSettings {
        bars: 4,
        scale: Some(scale),
        pitch_range: (48, 84),
        velocity_scale: 0.5,
        ..GenerationSettings::default()
    };
    let notes = run(&mut model, &settings, 1);
    assert!(
        notes.len() >= 4,
        "a random model still produces notes: {}",
        notes.len()
    );
    for note in &notes {
        assert!(scale.contains(note.pitch), "key lock: {note:?}");
        assert!((48..=84).contains(&note.pitch), "pitch range: {note:?}");
        assert!(
            note.start_beat >= 8.0 && note.start_beat < 8.0 + 16.0,
            "inside the 4 bars: {note:?}"
        );
        assert!(note.velocity <= 64, "velocity scaled by 0.5: {note:?}");
        assert!(note.end_beat > note.start_beat);
    }
    assert!(
        notes.windows(2).all(|w| w[0].start_beat <= w[1].start_beat),
        "notes come in start order"
    );
    assert_eq!(
        run(&mut model, &settings, 1),
        notes,
        "same seed, same phrase"
    );
    assert_ne!(
        run(&mut model, &settings, 2),
        notes,
        "another seed, another phrase"
    );
}

#[test]
fn density_control_moves_the_note_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let mut rate = |target: f32| {
        let settings = GenerationSettings {
            bars: 4,
            density_notes_per_beat: Some(target),
            ..GenerationSettings::default()
        };
        (1..=4)
            .map(|seed| run(&mut model, &settings, seed).len())
            .sum::<usize>() as f32
            / (4.0 * 16.0)
    };
    let sparse = rate(0.5);
    let dense = rate(3.0);
    assert!(
        dense > 2.0 * sparse,
        "density 3 gives {dense} notes/beat, density 0.5 gives {sparse}"
    );
}

#[test]
fn quantisation_snaps_starts_to_the_grid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let settings = GenerationSettings {
        bars: 2,
        quantize_beats: Some(0.5),
        ..GenerationSettings::default()
    };
    let notes = run(&mut model, &settings, 3);
    assert!(!notes.is_empty());
    assert!(
        notes
            .iter()
            .all(|n| (n.start_beat * 2.0).fract().abs() < 1e-9),
        "{notes:?}"
    );
}

#[test]
fn refuses_other_vocabularies_and_empty_prompts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = random_model(dir.path(), "someone-else-v9");
    let loaded = load_model(&path, ModelKind::Continuation, BackendChoice::Tract).expect("load");
    let error = TokenModel::new(loaded).err().expect("vocabulary mismatch");
    assert!(matches!(error, GenerateError::Vocabulary { .. }));
    assert!(error.to_string().contains("random.json"), "{error}");

    let other = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(other.path(), VOCAB_VERSION));
    let result = generate(
        &mut model,
        &[],
        0.0,
        &GenerationSettings::default(),
        &mut Rng::new(1),
        |_| {},
    );
    assert!(matches!(result, Err(GenerateError::NoNotes)));
}
