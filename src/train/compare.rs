//! `continuo-train compare`: continuation models side by side on one MIDI folder's held-out
//! split, measured as Phrase meets them: held-out perplexity of the exported model, tokens/s
//! of the model step alone, and trigger → first note through Phrase's own generator, primed
//! with the opening beats of each held-out piece, on each backend, one core.
//!
//! The table can be appended to each model's report (replacing an earlier comparison), which
//! is how the GRU / Transformer choice of the shipped models is recorded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::data::{CorpusOptions, Split};
use super::eval::HeldOut;
use super::pipeline::{load_corpus_verbose, run_eval, ModelFiles};
use crate::midi::file;
use crate::model::backend::{BackendChoice, RuntimeSearch};
use crate::model::{load_model_with, LoadOptions, ModelKind};
use crate::phrase::generate::{generate, GenerationSettings, Rng, TokenModel};

/// The heading of the section [`append_to_report`] writes.
pub const SECTION: &str = "## Compared on the same held-out data";

/// One model's figures.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The manifest.
    pub manifest: PathBuf,
    /// `training.config.model.arch` from the manifest (`gru`, `transformer`), if recorded.
    pub architecture: String,
    /// Held-out scores (ONNX Runtime).
    pub held_out: HeldOut,
    /// Per backend: (name, model-step tokens/s, first-note p50 ms, first-note max ms).
    pub speed: Vec<(String, f64, f64, f64)>,
}

/// How the first-note timing is measured.
#[derive(Debug, Clone, Copy)]
pub struct PromptOptions {
    /// Held-out pieces used as prompts (the first N in file-name order).
    pub pieces: usize,
    /// Bars of 4/4 (four beats, whatever the piece's metre) of each piece played as the prompt.
    pub prompt_bars: usize,
    /// Bars of 4/4 generated.
    pub bars: u32,
}

/// Measures every model in `models` on `data_dir`'s held-out split.
///
/// # Errors
/// A model that does not load or run, or a folder without held-out pieces.
pub fn compare(
    models: &[PathBuf],
    data_dir: &Path,
    runtime: &RuntimeSearch,
    prompts: PromptOptions,
    progress: bool,
) -> Result<Vec<Comparison>> {
    let mut results = Vec::new();
    for model in models {
        let files = ModelFiles::new(model);
        let manifest = crate::model::manifest::Manifest::load(&files.manifest)?;
        let config = |key: &str| {
            manifest
                .training
                .as_ref()
                .map(|t| t["config"][key].clone())
                .unwrap_or_default()
        };
        let architecture = config("model")["arch"].as_str().unwrap_or("gru").to_owned();
        let options = CorpusOptions {
            valid_percent: config("valid_percent").as_u64().unwrap_or(10) as u32,
            transpose: 0,
            min_notes: config("min_notes").as_u64().unwrap_or(8) as usize,
        };
        let corpus = load_corpus_verbose(data_dir, &options, false)?;
        let mut pieces: Vec<&Path> = corpus
            .split(Split::Valid)
            .map(|f| f.path.as_path())
            .collect();
        pieces.sort();
        pieces.truncate(prompts.pieces);
        let mut held_out = None;
        let mut speed = Vec::new();
        for backend in [BackendChoice::OnnxRuntime, BackendChoice::Tract] {
            let (scores, used, tokens_per_second) =
                run_eval(model, data_dir, backend, runtime, progress)?;
            held_out.get_or_insert(scores);
            let (p50, max) = first_note_ms(&files.manifest, backend, runtime, &pieces, prompts)?;
            speed.push((used.to_string(), tokens_per_second, p50, max));
        }
        let held_out = held_out.context("no backend ran")?;
        results.push(Comparison {
            manifest: files.manifest,
            architecture,
            held_out,
            speed,
        });
    }
    Ok(results)
}

/// Trigger → first decoded note through Phrase's generator (median and worst over the
/// pieces), the model reset before each, as a Generate press does.
fn first_note_ms(
    manifest: &Path,
    backend: BackendChoice,
    runtime: &RuntimeSearch,
    pieces: &[&Path],
    prompts: PromptOptions,
) -> Result<(f64, f64)> {
    let loaded = load_model_with(
        manifest,
        Some(ModelKind::Continuation),
        &LoadOptions {
            backend,
            runtime: runtime.clone(),
        },
    )?;
    let mut model = TokenModel::new(loaded)?;
    let settings = GenerationSettings {
        bars: prompts.bars,
        ..GenerationSettings::default()
    };
    let mut times = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        let song = file::read(piece)?;
        let prompt_beats = 4.0 * prompts.prompt_bars as f64;
        let prompt: Vec<_> = song
            .melodic_notes(None)
            .with_context(|| format!("reading {}", piece.display()))?
            .into_iter()
            .filter(|note| note.start_beat < prompt_beats)
            .collect();
        if prompt.is_empty() {
            continue;
        }
        model.reset();
        let trigger = Instant::now();
        let mut first = None;
        generate(
            &mut model,
            &prompt,
            prompt_beats,
            &settings,
            &mut Rng::new(index as u64),
            |_| {
                first.get_or_insert_with(|| trigger.elapsed().as_secs_f64() * 1000.0);
            },
        )?;
        times.extend(first);
    }
    anyhow::ensure!(!times.is_empty(), "no held-out piece gave a first note");
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// Phrase's speed bars, on the backend it ships with (ONNX Runtime).
pub const MIN_TOKENS_PER_SECOND: f64 = 5_000.0;
/// Median Generate → first note, ms.
pub const MAX_FIRST_NOTE_MS: f64 = 20.0;

impl Comparison {
    /// Whether the model meets Phrase's speed bars on the first backend measured (ONNX Runtime).
    pub fn meets_speed_bars(&self) -> bool {
        self.speed
            .first()
            .is_some_and(|(_, tokens_per_second, p50, _)| {
                *tokens_per_second >= MIN_TOKENS_PER_SECOND && *p50 <= MAX_FIRST_NOTE_MS
            })
    }

    fn name(&self) -> String {
        self.manifest
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The better model: the lowest held-out perplexity among those that meet Phrase's speed bars.
pub fn better(results: &[Comparison]) -> Option<&Comparison> {
    results
        .iter()
        .filter(|r| r.meets_speed_bars())
        .min_by(|a, b| {
            a.held_out
                .model
                .perplexity()
                .total_cmp(&b.held_out.model.perplexity())
        })
}

/// The comparison as a Markdown section (heading [`SECTION`]).
pub fn markdown(results: &[Comparison], data_dir: &Path, prompts: PromptOptions) -> String {
    let mut md = format!("{SECTION}\n\n");
    let _ = writeln!(
        md,
        "Held-out split of `{}` ({} tokens). Perplexity of the exported model (ONNX Runtime); \
         tokens/s of the model step alone; first note = Generate → first decoded note through \
         Phrase's generator, primed with the first {} beats of each of the first {} held-out \
         pieces, {} bars of 4/4 asked, median / worst. One core, the trainer's build.\n",
        data_dir.display(),
        results.first().map_or(0, |r| r.held_out.model.tokens),
        4 * prompts.prompt_bars,
        prompts.pieces,
        prompts.bars
    );
    md.push_str("| model | network | perplexity | vs 4-gram |");
    let backends: Vec<&str> = results
        .first()
        .map(|r| r.speed.iter().map(|s| s.0.as_str()).collect())
        .unwrap_or_default();
    for backend in &backends {
        let _ = write!(md, " {backend} tokens/s | {backend} first note |");
    }
    md.push_str("\n| --- | --- | ---: | ---: |");
    for _ in &backends {
        md.push_str(" ---: | ---: |");
    }
    md.push('\n');
    for r in results {
        let name = r.name();
        let _ = write!(
            md,
            "| `{name}` | {} | {:.3} | {:.1} % below |",
            r.architecture,
            r.held_out.model.perplexity(),
            100.0 * r.held_out.improvement_over_four_gram()
        );
        for (_, tokens_per_second, p50, max) in &r.speed {
            let _ = write!(md, " {tokens_per_second:.0} | {p50:.1} / {max:.1} ms |");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\nThe better model is the one with the lowest perplexity among those that meet Phrase's \
         speed bars on ONNX Runtime (≥ {MIN_TOKENS_PER_SECOND:.0} tokens/s, median first note \
         ≤ {MAX_FIRST_NOTE_MS:.0} ms): {}.",
        match better(results) {
            Some(r) => format!("`{}`", r.name()),
            None => "none of them".into(),
        }
    );
    md
}

/// Appends `section` to a report, replacing an earlier section with the same heading (which
/// must be the report's last).
///
/// # Errors
/// If the report cannot be read or written.
pub fn append_to_report(report: &Path, section: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let kept = match text.find(SECTION) {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut out = kept.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(section);
    std::fs::write(report, out).with_context(|| format!("writing {}", report.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::ngram::Evaluation;

    fn result(name: &str, nats_per_token: f64, tokens_per_second: f64, p50: f64) -> Comparison {
        let evaluation = |nats: f64| Evaluation {
            tokens: 100,
            nats: 100.0 * nats,
        };
        Comparison {
            manifest: PathBuf::from(format!("models/{name}.json")),
            architecture: "gru".into(),
            held_out: HeldOut {
                model: evaluation(nats_per_token),
                unigram: evaluation(3.0),
                four_gram: evaluation(1.5),
            },
            speed: vec![("ONNX Runtime".into(), tokens_per_second, p50, 2.0 * p50)],
        }
    }

    #[test]
    fn the_better_model_predicts_best_within_the_speed_bars() {
        let fast = result("fast", 0.6, 20_000.0, 7.0);
        let sharp_but_slow = result("sharp", 0.5, 6_000.0, 24.0);
        let sharp_and_fast = result("both", 0.5, 6_000.0, 12.0);
        let pick = |rs: &[Comparison]| better(rs).map(Comparison::name);
        assert_eq!(
            pick(&[fast.clone(), sharp_but_slow.clone()]).as_deref(),
            Some("fast")
        );
        assert_eq!(
            pick(&[fast.clone(), sharp_and_fast]).as_deref(),
            Some("both")
        );
        assert_eq!(pick(std::slice::from_ref(&sharp_but_slow)), None);
        let text = markdown(
            &[fast, sharp_but_slow],
            Path::new("DATA"),
            PromptOptions {
                pieces: 12,
                prompt_bars: 4,
                bars: 4,
            },
        );
        assert!(text.starts_with(SECTION));
        assert!(text.contains("| `sharp` | gru | 1.649 |"), "{text}");
        assert!(text.ends_with("ms): `fast`.\n"), "{text}");
    }

    #[test]
    fn a_report_keeps_one_comparison_the_latest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = dir.path().join("m.report.md");
        std::fs::write(&report, "# Model\n\nBody.\n").expect("write");
        append_to_report(&report, &format!("{SECTION}\n\nfirst\n")).expect("append");
        append_to_report(&report, &format!("{SECTION}\n\nsecond\n")).expect("append");
        let text = std::fs::read_to_string(&report).expect("read");
        assert_eq!(text, format!("# Model\n\nBody.\n\n{SECTION}\n\nsecond\n"));
    }
}
