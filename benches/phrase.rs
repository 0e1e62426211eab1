//! Continuo Phrase speed: tokens per second through the whole generator (model step + grammar
//! and key masks + sampling) and the time from a trigger to the first note being ready, on one
//! core, for both backends. Uses the shipped chorale models (`models/continuo-chorales*.json`,
//! chords) and folk models (`models/continuo-folk*.json`, continuing the prompt as a melody),
//! GRU and Transformer, when they exist, else a generated token model of similar size
//! (reported in the table).
//!
//! `cargo bench --bench phrase` (set ORT_DYLIB_PATH for the ONNX Runtime rows).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use continuo::midi::{Note, Scale};
use continuo::model::{load_model, BackendChoice, ModelKind};
use continuo::phrase::generate::{generate, GenerationSettings, Rng, TokenModel};
use continuo::phrase::texture::TextureChoice;

/// The models to time, with the texture each writes: every shipped continuation model (each
/// dataset's GRU and Transformer), chorales as chords and folk tunes as one line.
fn models(scratch: &Path) -> Vec<(PathBuf, TextureChoice)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut shipped: Vec<(PathBuf, TextureChoice)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let texture = if name.starts_with("continuo-chorales") {
                TextureChoice::Chords
            } else if name.starts_with("continuo-folk") {
                TextureChoice::Melody
            } else {
                return None;
            };
            name.ends_with(".json").then_some((path.clone(), texture))
        })
        .collect();
    shipped.sort_by(|a, b| a.0.cmp(&b.0));
    if !shipped.is_empty() {
        return shipped;
    }
    let path = common::random_continuation_model(scratch, "generated-gru256", 3, 256);
    vec![(path, TextureChoice::AsPlayed)]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let prompt: Vec<Note> = [
        60u8, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 59,
    ]
    .iter()
    .enumerate()
    .map(|(i, &p)| Note::new(p, 90, 0, i as f64 * 0.5, i as f64 * 0.5 + 0.45))
    .collect();
    println!("Continuo Phrase generation, one core");
    println!(
        "{:<32} {:<14} {:>12} {:>16} {:>16}",
        "model", "backend", "tokens/s", "first note p50", "first note p99"
    );
    for ((path, texture), (name, backend)) in models(scratch.path()).into_iter().flat_map(|m| {
        [
            ("ONNX Runtime", BackendChoice::OnnxRuntime),
            ("tract", BackendChoice::Tract),
        ]
        .map(|b| (m.clone(), b))
    }) {
        let settings = GenerationSettings {
            bars: 4,
            scale: Some(Scale::major(0)),
            texture,
            ..GenerationSettings::default()
        };
        let model_name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let loaded = match load_model(&path, ModelKind::Continuation, backend) {
            Ok(loaded) => loaded,
            Err(error) => {
                println!("{model_name:<32} {name:<14} unavailable: {error}");
                continue;
            }
        };
        let mut model = TokenModel::new(loaded).expect("token-step model");
        let mut tokens = 0usize;
        let mut first_note_ms = Vec::new();
        let started = Instant::now();
        for seed in 0..20 {
            let trigger = Instant::now();
            let mut first = None;
            let stats = generate(
                &mut model,
                &prompt,
                8.0,
                &settings,
                &mut Rng::new(seed),
                |_| {
                    first.get_or_insert_with(|| trigger.elapsed().as_secs_f64() * 1000.0);
                },
            )
            .expect("generate");
            tokens += stats.tokens;
            first_note_ms.extend(first);
        }
        let rate = tokens as f64 / started.elapsed().as_secs_f64();
        first_note_ms.sort_by(f64::total_cmp);
        println!(
            "{model_name:<32} {name:<14} {rate:>12.0} {:>13.2} ms {:>13.2} ms",
            percentile(&first_note_ms, 0.5),
            percentile(&first_note_ms, 0.99)
        );
    }
    println!("(tokens/s includes priming with the {}-note prompt; first note = trigger → first decoded note)", prompt.len());
}
