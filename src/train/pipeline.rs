//! The trainer's commands as library functions (the binary only parses arguments):
//! [`run_continuation`] (MIDI folder → verified, evaluated continuation model) and
//! [`run_eval`] (held-out metrics of an existing model).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::midi::tokenizer::{vocab_size, VOCAB_VERSION};
use crate::model::backend::{onnx_runtime, Backend, BackendChoice, RuntimeSearch};
use crate::model::loader::{load_model_with, LoadOptions};
use crate::model::manifest::{sha256_bytes, Manifest, ModelKind, VocabularyInfo, CONTRACT_VERSION};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::data::{load_corpus, Corpus, CorpusOptions, Split};
use super::eval::{baselines, evaluate_session, HeldOut};
use super::export::{export_verified, session_for_bytes, step_specs, Verification};
use super::plot::plot_loss;
use super::report::{write_report, ReportInputs};
pub use super::run::ModelFiles;
use super::run::RunOptions;
use super::training::{train, TrainOutcome, TrainingConfig};

/// A `continuo-train continuation` run.
#[derive(Debug, Clone)]
pub struct ContinuationJob {
    /// Folder of MIDI files.
    pub data_dir: PathBuf,
    /// `models/NAME`.
    pub out: PathBuf,
    /// The recipe (replaced by the checkpoint's when resuming).
    pub config: TrainingConfig,
    /// Continue from `models/NAME.ckpt` if it exists.
    pub resume: bool,
    /// Progress bars and messages on stderr.
    pub progress: bool,
    /// Stop flag (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Stop as if interrupted after this many steps (tests).
    pub stop_at_step: Option<usize>,
    /// Time budget in minutes, counted across resumes (`None` = none).
    pub max_minutes: Option<f64>,
    /// Where ONNX Runtime may be found.
    pub runtime: RuntimeSearch,
    /// Fail if ONNX Runtime cannot be loaded (otherwise verify and evaluate on tract only).
    pub require_onnx_runtime: bool,
    /// The model's card: what it is and learned from (manifest and report).
    pub description: Option<String>,
}

/// What [`run_continuation`] produced.
#[derive(Debug)]
pub struct ContinuationResult {
    /// Output paths.
    pub files: ModelFiles,
    /// The corpus as loaded (files, skipped files).
    pub corpus: Corpus,
    /// The training run.
    pub outcome: TrainOutcome,
    /// Held-out metrics (`None` when interrupted).
    pub held_out: Option<HeldOut>,
    /// Export verification per backend (empty when interrupted).
    pub verifications: Vec<Verification>,
    /// Tokens/s of the exported model per backend.
    pub speed: Vec<(Backend, f64)>,
    /// Notes for the user (e.g. "ONNX Runtime unavailable, verified on tract only").
    pub notes: Vec<String>,
}

fn say(progress: bool, message: impl AsRef<str>) {
    if progress {
        eprintln!("{}", message.as_ref());
    }
}

fn file_bar(progress: bool, len: usize, what: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{wide_bar}} {{pos}}/{{len}} files, ETA {{eta}}"
        ))
        .expect("valid template"),
    );
    bar
}

/// Loads a corpus with a progress bar and reports skipped files on stderr.
///
/// # Errors
/// If the folder cannot be listed.
pub fn load_corpus_verbose(dir: &Path, options: &CorpusOptions, progress: bool) -> Result<Corpus> {
    let count = super::data::midi_files(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .len();
    let bar = file_bar(progress, count, "reading MIDI");
    let corpus = load_corpus(dir, options, |_| bar.inc(1))
        .with_context(|| format!("listing {}", dir.display()))?;
    bar.finish_and_clear();
    for skipped in &corpus.skipped {
        say(progress, format!("skipped {}", skipped.reason));
    }
    Ok(corpus)
}

/// Backends available for verification and evaluation: tract always, ONNX Runtime when its
/// library loads (an error instead when `require` is set).
fn backends(
    search: &RuntimeSearch,
    require: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<Backend>> {
    match onnx_runtime(search) {
        Ok(_) => Ok(vec![Backend::OnnxRuntime, Backend::Tract]),
        Err(e) if require => bail!("ONNX Runtime is required but unavailable: {e}"),
        Err(e) => {
            notes.push(format!(
                "ONNX Runtime unavailable ({e}); verified and evaluated on tract only"
            ));
            Ok(vec![Backend::Tract])
        }
    }
}

/// MIDI folder → trained, exported, verified and evaluated continuation model; see the
/// crate's README for the files written.
///
/// # Errors
/// No usable files, training failure, failed export verification, or I/O errors. An
/// interrupted run is not an error: it returns with `outcome.interrupted` set and a
/// checkpoint saved.
pub fn run_continuation(job: &ContinuationJob) -> Result<ContinuationResult> {
    let files = ModelFiles::new(&job.out);
    let name = files.name();
    if let Some(parent) = files
        .manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let run = RunOptions {
        checkpoint_dir: files.checkpoint.clone(),
        resume: job.resume,
        stop: job.stop.clone(),
        progress: job.progress,
        stop_at_step: job.stop_at_step,
        max_minutes: job.max_minutes,
    };
    let config = run.config(&job.config)?;
    let corpus = load_corpus_verbose(&job.data_dir, &config.corpus_options(), job.progress)?;
    let train_files = corpus.split(Split::Train).count();
    let valid_files = corpus.split(Split::Valid).count();
    if corpus.files.is_empty() {
        bail!(
            "no usable MIDI files in {} ({} skipped); run `continuo-train check {}`",
            job.data_dir.display(),
            corpus.skipped.len(),
            job.data_dir.display()
        );
    }
    if valid_files == 0 {
        bail!(
            "no held-out files: {} usable files and none falls into the {} % held-out split; \
             add files or raise --valid-percent",
            corpus.files.len(),
            config.valid_percent
        );
    }
    say(
        job.progress,
        format!(
            "{} usable files ({train_files} train, {valid_files} held out, {} skipped); \
             {} training tokens ({} with transpositions), {} held-out tokens",
            corpus.files.len(),
            corpus.skipped.len(),
            corpus.token_count(Split::Train),
            corpus
                .split(Split::Train)
                .map(|f| f.variants.iter().map(Vec::len).sum::<usize>())
                .sum::<usize>(),
            corpus.token_count(Split::Valid),
        ),
    );

    let outcome = train(&config, &corpus, &run)?;
    let mut result = ContinuationResult {
        files: files.clone(),
        corpus,
        outcome,
        held_out: None,
        verifications: Vec::new(),
        speed: Vec::new(),
        notes: Vec::new(),
    };
    if result.outcome.interrupted {
        return Ok(result);
    }
    let outcome = &result.outcome;
    let corpus = &result.corpus;

    // Export and verify against burn before anything is written as a model.
    let backends = backends(&job.runtime, job.require_onnx_runtime, &mut result.notes)?;
    let (bytes, _, verifications) =
        export_verified(&outcome.model, &name, &backends, &job.runtime)?;
    for v in &verifications {
        say(
            job.progress,
            format!(
                "export verified on {}: max |burn − ONNX| logits {:.2e}, state {:.2e}",
                v.backend, v.max_logit_error, v.max_state_error
            ),
        );
    }

    // Held-out evaluation of the exported model, exactly as the plugin runs it.
    let valid = corpus.sequences(Split::Valid);
    let training = corpus.sequences(Split::Train);
    let augmented = (config.transpose > 0).then(|| corpus.augmented_training_sequences());
    let state_shape = config.model.state_shape(1);
    let mut speed = Vec::new();
    let mut model_eval = None;
    for (index, &backend) in backends.iter().enumerate() {
        let mut session = session_for_bytes(&bytes, backend, &job.runtime)?;
        let bar = file_bar(
            job.progress,
            valid.len(),
            &format!("held-out eval ({backend})"),
        );
        // The first backend scores every held-out file; the others only time a few.
        let subset = if index == 0 {
            &valid[..]
        } else {
            &valid[..valid.len().min(3)]
        };
        let (evaluation, tokens_per_second) =
            evaluate_session(&mut session, state_shape, subset, || bar.inc(1))?;
        bar.finish_and_clear();
        speed.push((backend, tokens_per_second));
        if index == 0 {
            model_eval = Some(evaluation);
        }
    }
    let (unigram, four_gram) = baselines(&training, augmented.as_deref(), &valid, vocab_size());
    let held_out = HeldOut {
        model: model_eval.expect("at least one backend"),
        unigram,
        four_gram,
    };

    // Write the model, then load it through the plugin's own pipeline as a last check.
    std::fs::write(&files.onnx, &bytes)
        .with_context(|| format!("writing {}", files.onnx.display()))?;
    let (inputs, outputs) = step_specs(
        vocab_size(),
        config.model.layers,
        config.model.state_width(),
    );
    let steps_per_second = outcome.state.step as f64 / outcome.state.elapsed_secs.max(1e-9);
    let training_summary = serde_json::json!({
        "trainer": "continuo-train continuation",
        "corpus": job.data_dir.display().to_string(),
        "files_usable": corpus.files.len(),
        "files_skipped": corpus.skipped.len(),
        "train_files": result.corpus.split(Split::Train).count(),
        "held_out_files": valid.len(),
        "split": format!("held out when sha256(file name) % 100 < {}", config.valid_percent),
        "train_tokens": corpus.token_count(Split::Train),
        "held_out_tokens": corpus.token_count(Split::Valid),
        "transpose_semitones": config.transpose,
        "steps": outcome.state.step,
        "epochs_completed": outcome.state.epoch,
        "tokens_seen": outcome.state.tokens_seen,
        "seed": config.seed,
        "wall_time_secs": (outcome.state.elapsed_secs * 10.0).round() / 10.0,
        "steps_per_second": (steps_per_second * 100.0).round() / 100.0,
        "resumed_from_step": outcome.resumed_from,
        "time_limited": outcome.time_limited,
        "max_minutes": job.max_minutes,
        "tokenizer": VOCAB_VERSION,
        "framework": "burn 0.22.1 (flex CPU backend)",
        "config": serde_json::from_str::<serde_json::Value>(&config.to_string()).unwrap_or_default(),
        "export_verification": verifications.iter().map(|v| serde_json::json!({
            "backend": v.backend.to_string(),
            "steps": v.steps,
            "max_logit_error": v.max_logit_error,
            "max_state_error": v.max_state_error,
        })).collect::<Vec<_>>(),
    });
    let mut metrics: std::collections::BTreeMap<String, f64> =
        held_out.metrics().into_iter().collect();
    for (backend, tps) in &speed {
        let key = match backend {
            Backend::OnnxRuntime => "tokens_per_second_onnxruntime",
            Backend::Tract => "tokens_per_second_tract",
        };
        metrics.insert(key.into(), tps.round());
    }
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        name: name.clone(),
        kind: ModelKind::Continuation,
        description: job.description.clone(),
        sample_rate: None,
        hop_size: None,
        frame_rate_hz: None,
        features: None,
        synth: None,
        vocabulary: Some(VocabularyInfo {
            version: VOCAB_VERSION.to_owned(),
            size: vocab_size() as u32,
        }),
        onnx_file: None,
        inputs,
        outputs,
        latency_samples: 0,
        parameter_count: config.model.parameter_count() as u64,
        training: Some(training_summary.clone()),
        metrics,
        onnx_sha256: sha256_bytes(&bytes),
    };
    manifest
        .save(&files.manifest)
        .with_context(|| format!("writing {}", files.manifest.display()))?;
    load_model_with(
        &files.manifest,
        Some(ModelKind::Continuation),
        &LoadOptions {
            backend: BackendChoice::Tract,
            runtime: job.runtime.clone(),
        },
    )
    .with_context(|| {
        format!(
            "the written model {} does not load",
            files.manifest.display()
        )
    })?;

    let axes = plot_loss(
        &files.plot,
        &outcome.state.history,
        Some(held_out.four_gram.nats_per_token()),
    )?;
    let skipped: Vec<(String, String)> = corpus
        .skipped
        .iter()
        .map(|s| (s.path.display().to_string(), s.reason.clone()))
        .collect();
    let speed_rows: Vec<(String, f64)> = speed.iter().map(|(b, t)| (b.to_string(), *t)).collect();
    let plot_file = files
        .plot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_report(
        &files.report,
        &ReportInputs {
            name: &name,
            description: job.description.as_deref(),
            architecture: config.model.arch,
            held_out,
            verifications: &verifications,
            speed: &speed_rows,
            history: &outcome.state.history,
            axes,
            plot_file: &plot_file,
            training: &training_summary,
            skipped: &skipped,
        },
    )?;
    result.held_out = Some(held_out);
    result.verifications = verifications;
    result.speed = speed;
    Ok(result)
}

/// Held-out metrics of an existing model on the held-out split of `data_dir` (the split the
/// manifest records, 10 % by default). Returns the metrics and tokens/s.
///
/// # Errors
/// If the model does not load, is not a continuation model of this vocabulary, or the folder
/// has no held-out files.
pub fn run_eval(
    model: &Path,
    data_dir: &Path,
    backend: BackendChoice,
    runtime: &RuntimeSearch,
    progress: bool,
) -> Result<(HeldOut, Backend, f64)> {
    let files = ModelFiles::new(model);
    let mut loaded = load_model_with(
        &files.manifest,
        Some(ModelKind::Continuation),
        &LoadOptions {
            backend,
            runtime: runtime.clone(),
        },
    )?;
    let manifest = &loaded.manifest;
    match &manifest.vocabulary {
        Some(v) if v.version == VOCAB_VERSION && v.size as usize == vocab_size() => {}
        other => bail!(
            "{}: vocabulary {:?} does not match this build's {VOCAB_VERSION} ({} tokens)",
            files.manifest.display(),
            other,
            vocab_size()
        ),
    }
    let h0 = manifest
        .inputs
        .iter()
        .find(|s| s.name == "h0")
        .context("the model has no `h0` input")?;
    let dims: Vec<usize> = h0.shape.iter().filter_map(|d| d.fixed()).collect();
    let state_shape: [usize; 3] = dims
        .try_into()
        .map_err(|_| anyhow::anyhow!("`h0` must have three fixed dims"))?;
    let field = |key: &str| {
        manifest
            .training
            .as_ref()
            .and_then(|t| t["config"][key].as_u64())
    };
    let options = CorpusOptions {
        valid_percent: field("valid_percent").unwrap_or(10) as u32,
        transpose: 0,
        min_notes: field("min_notes").unwrap_or(8) as usize,
    };
    let corpus = load_corpus_verbose(data_dir, &options, progress)?;
    let valid = corpus.sequences(Split::Valid);
    if valid.is_empty() {
        bail!(
            "no held-out files in {} ({} usable, {} % held out)",
            data_dir.display(),
            corpus.files.len(),
            options.valid_percent
        );
    }
    let bar = file_bar(
        progress,
        valid.len(),
        &format!("held-out eval ({})", loaded.backend),
    );
    let (model_eval, tokens_per_second) =
        evaluate_session(&mut loaded.session, state_shape, &valid, || bar.inc(1))?;
    bar.finish_and_clear();
    let training = corpus.sequences(Split::Train);
    let (unigram, four_gram) = baselines(&training, None, &valid, vocab_size());
    Ok((
        HeldOut {
            model: model_eval,
            unigram,
            four_gram,
        },
        loaded.backend,
        tokens_per_second,
    ))
}
