#![cfg(feature = "train")]
//! The trainer end to end on tiny synthetic corpora written by the test itself: learning,
//! export verification (and its negative control), exact resume, bad files, the whole
//! `continuation` pipeline, and the binary's `check`.
//!
//! Tests that run ONNX Runtime need `ORT_DYLIB_PATH` and fail (never skip) without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use continuo::midi::tokenizer::vocab_size;
use continuo::midi::{file, Note};
use continuo::model::backend::{onnx_runtime, Backend, BackendChoice, RuntimeSearch};
use continuo::model::manifest::{Manifest, ModelKind};
use continuo::phrase::generate::{generate, GenerationSettings, Rng, TokenModel};
use continuo::train::data::{load_corpus, CorpusOptions, Split};
use continuo::train::export::transformer::{self, TransformerWeights, GRAPH_CONSTANTS};
use continuo::train::export::{
    export_verified, extract, gru, session_for_bytes, swap_update_reset, verify, TOLERANCE,
};
use continuo::train::model::{Architecture, ContinuationModel};
use continuo::train::pipeline::{run_continuation, run_eval, ContinuationJob};
use continuo::train::training::{cpu_device, train, RunOptions, TrainingConfig};

/// burn's device seed is process-wide: the tests that build or train models here run one at
/// a time, or one's random draws would interleave with another's and the seeded runs could
/// not repeat each other.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The ONNX Runtime library; fails the test with instructions when it is not configured.
fn ort_search() -> RuntimeSearch {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ORT_DYLIB_PATH is not set: this test needs the ONNX Runtime 1.31 library, e.g. \
                 ORT_DYLIB_PATH=/work/main/target/onnxruntime/libonnxruntime.so.1.31.1"
            )
        });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "ORT_DYLIB_PATH={} does not exist",
        path.display()
    );
    let search = RuntimeSearch::explicit(path);
    onnx_runtime(&search).unwrap_or_else(|e| panic!("ONNX Runtime did not load: {e}"));
    search
}

/// A repetitive melody: an eight-note motif transposed per file, in eighth notes.
fn melody(file: usize, bars: usize) -> Vec<Note> {
    let motif = [0u8, 2, 4, 5, 7, 5, 4, 2];
    let base = 55 + (file % 5) as u8;
    (0..bars * 8)
        .map(|i| {
            let start = i as f64 * 0.5;
            let long = i % 8 == 7;
            Note::new(
                base + motif[i % 8],
                90,
                0,
                start,
                start + if long { 0.5 } else { 0.25 },
            )
        })
        .collect()
}

/// Writes `count` melody files into `dir` and returns their paths.
fn write_corpus(dir: &Path, count: usize, bars: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("tune{i:02}.mid"));
            file::write(&path, &melody(i, bars), 120.0, 480).unwrap();
            path
        })
        .collect()
}

/// A tiny, fast recipe.
fn tiny_config(layers: usize) -> TrainingConfig {
    let mut config = TrainingConfig::recipe(vocab_size());
    config.model.d_embed = 8;
    config.model.d_hidden = 16;
    config.model.layers = layers;
    config.batch_size = 4;
    config.seq_len = 16;
    config.learning_rate = 1e-2;
    config.valid_percent = 30;
    config.log_every = 4;
    config.eval_every = 8;
    config.checkpoint_every = 0;
    config
}

/// A tiny Transformer whose window (5 earlier tokens) slides within the tests' sequences.
fn tiny_transformer_config(layers: usize) -> TrainingConfig {
    let mut config = tiny_config(layers);
    config.model.arch = Architecture::Transformer;
    config.model.heads = 2;
    config.model.d_ff = 24;
    config.model.memory = 5;
    config
}

fn corpus_dir(count: usize, bars: usize) -> (tempfile::TempDir, continuo::train::data::Corpus) {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path(), count, bars);
    let corpus = load_corpus(dir.path(), &tiny_config(1).corpus_options(), |_| {}).unwrap();
    assert!(
        corpus.split(Split::Valid).count() > 0,
        "the test corpus needs a held-out file"
    );
    assert!(corpus.split(Split::Train).count() > 0);
    (dir, corpus)
}

#[test]
fn loss_decreases_on_a_repetitive_corpus() {
    let _serial = one_at_a_time();
    let (_dir, corpus) = corpus_dir(10, 8);
    for mut config in [tiny_config(1), tiny_transformer_config(2)] {
        config.max_steps = Some(80);
        config.epochs = 1000;
        learns(&config, &corpus);
    }
}

fn learns(config: &TrainingConfig, corpus: &continuo::train::data::Corpus) {
    let ckpt = tempfile::tempdir().unwrap();
    let outcome = train(config, corpus, &RunOptions::new(ckpt.path().join("c"))).unwrap();
    assert_eq!(outcome.state.step, 80);
    let history = &outcome.state.history;
    let first = history.first().unwrap().train;
    let last = history.last().unwrap().train;
    let uniform = (vocab_size() as f64).ln();
    assert!(
        first > 0.8 * uniform,
        "starts near uniform: {first} vs {uniform}"
    );
    assert!(last < 0.4 * first, "training loss {first} → {last}");
    let valid: Vec<f64> = history.iter().filter_map(|p| p.valid).collect();
    assert!(valid.len() >= 2, "{history:?}");
    assert!(
        valid.last().unwrap() < &(0.5 * uniform),
        "held-out loss {valid:?}"
    );
}

/// A wrong export of `model` runs on both backends but fails verification.
fn assert_caught(wrong: &[u8], model: &ContinuationModel, search: &RuntimeSearch, what: &str) {
    for backend in [Backend::OnnxRuntime, Backend::Tract] {
        let mut session = session_for_bytes(wrong, backend, search).unwrap();
        let check = verify(&mut session, model, 32, 7).unwrap();
        assert!(
            !check.passes(TOLERANCE) && check.max_error() > 1e-3,
            "{what}, {backend}: not caught: {check:?}"
        );
    }
}

#[test]
fn export_matches_burn_on_both_backends_and_swapped_gates_fail() {
    let _serial = one_at_a_time();
    let search = ort_search();
    let device = cpu_device();
    device.seed(3);
    for layers in [1, 2] {
        let model = tiny_config(layers).model.init(&device);
        let (bytes, params, checks) = export_verified(
            &model,
            "tiny",
            &[Backend::OnnxRuntime, Backend::Tract],
            &search,
        )
        .unwrap();
        assert!(!bytes.is_empty());
        assert_eq!(params as usize, tiny_config(layers).model.parameter_count());
        assert_eq!(checks.len(), 2);
        for check in &checks {
            assert!(check.passes(TOLERANCE), "{check:?}");
            assert!(check.max_error() < 1e-5, "{check:?}");
        }

        // Negative control: the z/r-swapped export runs but must fail verification.
        let ContinuationModel::Gru(gru_model) = &model else {
            panic!("tiny_config is a GRU")
        };
        let wrong = gru::step_graph(&swap_update_reset(&extract(gru_model)), "wrong").to_bytes();
        assert_caught(
            &wrong,
            &model,
            &search,
            &format!("{layers} layer(s), swapped gates"),
        );
    }
}

#[test]
fn transformer_export_matches_burn_on_both_backends_and_reversed_distances_fail() {
    let _serial = one_at_a_time();
    let search = ort_search();
    let device = cpu_device();
    device.seed(5);
    for layers in [1, 2] {
        let config = tiny_transformer_config(layers);
        let model = config.model.init(&device);
        let (_, params, checks) = export_verified(
            &model,
            "tiny",
            &[Backend::OnnxRuntime, Backend::Tract],
            &search,
        )
        .unwrap();
        assert_eq!(
            params as usize,
            config.model.parameter_count() + GRAPH_CONSTANTS
        );
        assert_eq!(checks.len(), 2);
        for check in &checks {
            // 32 steps through a 5-token window: the window slides 27 times.
            assert!(check.max_error() < 1e-5, "{layers} block(s): {check:?}");
        }

        // Negative control: relative positions read from the wrong end.
        let ContinuationModel::Transformer(m) = &model else {
            panic!("a Transformer config")
        };
        let wrong =
            transformer::step_graph(&TransformerWeights::extract(m).reverse_distances(), "wrong")
                .to_bytes();
        assert_caught(
            &wrong,
            &model,
            &search,
            &format!("{layers} block(s), reversed distances"),
        );
    }
}

/// What training computes (many tokens at once, the window as a band mask, long inputs in
/// chunks) is what Phrase computes (one token per call, the window in the state).
#[test]
fn transformer_sequence_forward_equals_token_by_token() {
    let _serial = one_at_a_time();
    use burn::tensor::{Int, Tensor, TensorData};
    let device = cpu_device();
    device.seed(9);
    let model = tiny_transformer_config(2).model.init(&device);
    let (batch, steps) = (2, 70); // longer than the model's internal chunk of 64
    let ids: Vec<i64> = (0..batch * steps)
        .map(|i| ((i * 37 + 11) % vocab_size()) as i64)
        .collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [batch, steps]), &device);
    let (all_at_once, final_state) = model.forward(tokens, None);
    let all_at_once: Vec<f32> = all_at_once.into_data().try_to_vec::<f32>().unwrap();

    let vocab = vocab_size();
    let mut state = None;
    let mut worst = 0.0f32;
    for t in 0..steps {
        let column: Vec<i64> = (0..batch).map(|b| ids[b * steps + t]).collect();
        let token = Tensor::<2, Int>::from_data(TensorData::new(column, [batch, 1]), &device);
        let (logits, next) = model.forward(token, state);
        state = Some(next);
        let logits: Vec<f32> = logits.into_data().try_to_vec::<f32>().unwrap();
        for b in 0..batch {
            let expected = &all_at_once[(b * steps + t) * vocab..(b * steps + t + 1) * vocab];
            for (x, y) in logits[b * vocab..(b + 1) * vocab].iter().zip(expected) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    assert!(worst < 1e-4, "largest logit difference {worst}");
    let stepped: Vec<f32> = state.unwrap().into_data().try_to_vec::<f32>().unwrap();
    let whole: Vec<f32> = final_state.into_data().try_to_vec::<f32>().unwrap();
    let state_error = stepped
        .iter()
        .zip(&whole)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(state_error < 1e-4, "largest state difference {state_error}");
}

/// The time budget ends a run normally (evaluated, not interrupted) and belongs to the run,
/// not the recipe: resumed with more time, the run goes on.
#[test]
fn the_time_budget_ends_a_run_and_a_resume_may_extend_it() {
    let _serial = one_at_a_time();
    let (_dir, corpus) = corpus_dir(6, 4);
    let mut config = tiny_config(1);
    config.max_steps = Some(8);
    let dirs = tempfile::tempdir().unwrap();
    let mut options = RunOptions::new(dirs.path().join("c"));
    options.max_minutes = Some(0.0);
    let short = train(&config, &corpus, &options).unwrap();
    assert!(short.time_limited && !short.interrupted);
    assert_eq!(short.state.step, 1, "at least one step, then the budget");
    assert!(
        short.state.last_valid_loss().is_some(),
        "the last step is evaluated"
    );

    // Resumed with its budget spent, a run trains no further.
    options.resume = true;
    let again = train(&config, &corpus, &options).unwrap();
    assert!(again.time_limited);
    assert_eq!(again.state.step, 1);

    options.max_minutes = None;
    let extended = train(&config, &corpus, &options).unwrap();
    assert_eq!(extended.resumed_from, Some(1));
    assert!(!extended.time_limited);
    assert_eq!(extended.state.step, 8);
}

#[test]
fn resume_reproduces_an_uninterrupted_run() {
    let _serial = one_at_a_time();
    let (_dir, corpus) = corpus_dir(6, 4);
    let mut config = tiny_config(2);
    config.max_steps = Some(24);
    config.epochs = 1000;
    let dirs = tempfile::tempdir().unwrap();

    let straight = train(&config, &corpus, &RunOptions::new(dirs.path().join("a"))).unwrap();
    assert!(!straight.interrupted);

    let mut options = RunOptions::new(dirs.path().join("b"));
    options.stop_at_step = Some(11);
    let first = train(&config, &corpus, &options).unwrap();
    assert!(first.interrupted);
    assert_eq!(first.state.step, 11);
    assert!(
        first.state.batch_in_epoch > 0,
        "stop mid-epoch so the carried state is exercised"
    );
    options.stop_at_step = None;
    options.resume = true;
    let resumed = train(&config, &corpus, &options).unwrap();
    assert_eq!(resumed.resumed_from, Some(11));
    assert!(!resumed.interrupted);
    assert!(resumed.state.epoch >= 2, "the run crosses epoch boundaries");

    assert_eq!(resumed.state.step, straight.state.step);
    assert_eq!(resumed.state.history, straight.state.history, "same losses");
    let weights = |model: &ContinuationModel| match model {
        ContinuationModel::Gru(m) => extract(m),
        ContinuationModel::Transformer(_) => panic!("tiny_config is a GRU"),
    };
    assert_eq!(
        weights(&straight.model),
        weights(&resumed.model),
        "same weights, bit for bit"
    );
}

#[test]
fn bad_files_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_corpus(dir.path(), 3, 2);
    std::fs::write(
        dir.path().join("garbage.mid"),
        b"this is not a MIDI file at all",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.mid"), b"").unwrap();
    let drums: Vec<Note> = (0..16)
        .map(|i| Note::new(36, 100, 9, i as f64, i as f64 + 0.5))
        .collect();
    file::write(dir.path().join("drums.mid"), &drums, 120.0, 480).unwrap();
    file::write(
        dir.path().join("short.mid"),
        &[Note::new(60, 90, 0, 0.0, 1.0)],
        120.0,
        480,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();

    let corpus = load_corpus(dir.path(), &CorpusOptions::default(), |_| {}).unwrap();
    assert_eq!(corpus.files.len(), good.len());
    let reasons: Vec<&str> = corpus.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    let find = |name: &str| {
        corpus
            .skipped
            .iter()
            .find(|s| s.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {reasons:?}"))
            .reason
            .clone()
    };
    assert!(find("drums.mid").contains("drum-only"));
    assert!(find("short.mid").contains("too short"));
    assert!(find("garbage.mid").contains("garbage.mid"));
    assert!(find("empty.mid").contains("empty.mid"));
}

#[test]
fn continuation_pipeline_writes_a_loadable_evaluated_model() {
    let _serial = one_at_a_time();
    for config in [tiny_config(1), tiny_transformer_config(2)] {
        pipeline_writes_a_loadable_evaluated_model(config);
    }
}

fn pipeline_writes_a_loadable_evaluated_model(mut config: TrainingConfig) {
    let search = ort_search();
    let data = tempfile::tempdir().unwrap();
    write_corpus(data.path(), 10, 6);
    std::fs::write(data.path().join("broken.mid"), b"MThd garbage").unwrap();
    let out = tempfile::tempdir().unwrap();
    let arch = config.model.arch;
    config.max_steps = Some(40);
    config.epochs = 1000;
    let job = ContinuationJob {
        data_dir: data.path().to_path_buf(),
        out: out.path().join("models").join("tiny"),
        config,
        resume: false,
        progress: false,
        stop: Default::default(),
        stop_at_step: None,
        max_minutes: None,
        runtime: search.clone(),
        require_onnx_runtime: true,
        description: Some("tiny test tunes".into()),
    };
    let result = run_continuation(&job).unwrap();
    assert_eq!(result.corpus.skipped.len(), 1);
    assert_eq!(result.verifications.len(), 2);
    let held_out = result.held_out.unwrap();
    assert!(held_out.model.tokens > 0);
    assert_eq!(held_out.model.tokens, held_out.four_gram.tokens);
    for path in [
        &result.files.onnx,
        &result.files.manifest,
        &result.files.report,
        &result.files.plot,
    ] {
        assert!(path.is_file(), "{} missing", path.display());
    }
    let png = std::fs::read(&result.files.plot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let manifest = Manifest::load(&result.files.manifest).unwrap();
    assert_eq!(manifest.kind, ModelKind::Continuation);
    assert_eq!(manifest.description.as_deref(), Some("tiny test tunes"));
    assert_eq!(
        manifest.vocabulary.as_ref().unwrap().size as usize,
        vocab_size()
    );
    for key in [
        "perplexity",
        "bits_per_token",
        "four_gram_perplexity",
        "unigram_perplexity",
    ] {
        assert!(manifest.metrics[key].is_finite(), "{key}");
    }
    let training = manifest.training.unwrap();
    assert_eq!(training["steps"], 40);
    assert_eq!(training["seed"], 42);
    assert_eq!(
        training["config"]["model"]["arch"],
        format!("{arch:?}").to_lowercase()
    );
    let report = std::fs::read_to_string(&result.files.report).unwrap();
    assert!(report.contains("broken.mid"), "skipped files are listed");
    assert!(report.contains(&format!("Network: {}.", arch.label())));

    // Phrase loads it and continues a tune with it, on both backends.
    for backend in [BackendChoice::OnnxRuntime, BackendChoice::Tract] {
        let loaded =
            continuo::model::load_model(&result.files.manifest, ModelKind::Continuation, backend)
                .unwrap();
        let mut model = TokenModel::new(loaded).unwrap();
        let mut notes = Vec::new();
        generate(
            &mut model,
            &melody(0, 2),
            8.0,
            &GenerationSettings::default(),
            &mut Rng::new(1),
            |note| notes.push(note),
        )
        .unwrap();
        assert!(!notes.is_empty(), "{arch:?} on {backend:?} wrote nothing");
    }

    // `eval` on the written model reproduces the pipeline's numbers on both backends.
    for backend in [BackendChoice::OnnxRuntime, BackendChoice::Tract] {
        let (again, _, tokens_per_second) =
            run_eval(&job.out, data.path(), backend, &search, false).unwrap();
        assert_eq!(again.model.tokens, held_out.model.tokens);
        assert!((again.model.perplexity() - held_out.model.perplexity()).abs() < 1e-3);
        assert!(tokens_per_second > 0.0);
    }
}

fn run_check(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_continuo-train"))
        .arg("check")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn check_exits_non_zero_on_empty_and_garbage_folders() {
    let empty = tempfile::tempdir().unwrap();
    let output = run_check(empty.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nothing usable"), "{stderr}");

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join("noise.mid"), b"\x00\x01\x02garbage").unwrap();
    std::fs::write(garbage.path().join("noise.wav"), b"RIFF....WAVEjunk").unwrap();
    let output = run_check(garbage.path());
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["noise.mid", "noise.wav"] {
        assert!(stdout.contains(name), "problem lines name {name}: {stdout}");
        assert!(stderr.contains(name), "the error names {name}: {stderr}");
    }

    // A usable folder passes and reports WAV details.
    let good = tempfile::tempdir().unwrap();
    write_corpus(good.path(), 2, 4);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(good.path().join("tone.wav"), spec).unwrap();
    for i in 0..88_200 {
        wav.write_sample(((i as f32 * 0.05).sin() * 10_000.0) as i16)
            .unwrap();
    }
    wav.finalize().unwrap();
    let output = run_check(good.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("MIDI: 2 files, 2 usable"), "{stdout}");
    assert!(stdout.contains("WAV: 1 files, 1 usable"), "{stdout}");
    assert!(stdout.contains("44100 Hz"), "{stdout}");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes() {
    let data = tempfile::tempdir().unwrap();
    write_corpus(data.path(), 10, 6);
    let out = tempfile::tempdir().unwrap();
    let model = out.path().join("tiny");
    let args = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_continuo-train"));
        command
            .args(["continuation", "--quiet", "--hidden", "8", "--embed", "4"])
            .args([
                "--batch-size",
                "2",
                "--seq-len",
                "8",
                "--valid-percent",
                "30",
            ])
            .arg(data.path())
            .arg("--out")
            .arg(&model)
            .args(extra);
        command
    };
    let child = args(&["--epochs", "100000", "--checkpoint-every", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let it install the handler and start training, then interrupt it like Ctrl-C does.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved"), "{stderr}");
    let checkpoint = out.path().join("tiny.ckpt");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join("state.json")).unwrap())
            .unwrap();
    let stopped_at = state["step"].as_u64().unwrap();
    assert!(stopped_at >= 1);

    // --resume continues with the checkpoint's saved config (its 100000 epochs win over the
    // command line's), from the saved step: interrupt it again and check that it went on.
    let child = args(&["--resume", "--epochs", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join("state.json")).unwrap())
            .unwrap();
    assert!(
        state["step"].as_u64().unwrap() > stopped_at,
        "resumed and went on"
    );
}
