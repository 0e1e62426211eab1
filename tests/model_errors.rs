//! Every error class, produced by a real broken file in a temporary directory. Each test
//! checks the variant and that the message names the file. Hostile models (counts far above
//! their caps, styles that fail) are refused at load or replaced hop by hop by what is still
//! valid, in the library and in the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use continuo::engine::audio::HopProcessor;
use continuo::model::loader::{load_model_with, LoadOptions};
use continuo::model::manifest::{sha256_bytes, ModelKind, MAX_FIXED_DIM, MAX_MANIFEST_BYTES};
use continuo::model::onnx_writer::proto::ModelProto;
use continuo::model::onnx_writer::{Attr, GraphBuilder};
use continuo::model::{chain_message, Manifest, SynthSpec};
use continuo::model::{
    load_model, scan, Backend, BackendChoice, Dim, Dtype, ModelDirs, ModelError, RuntimeSearch,
    TensorSpec,
};
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleSettings,
    StyleStatus, TimbreModel, TimbreVoice,
};
use prost::Message;

/// A valid dense+tanh model `<dir>/m.json` + `m.onnx`.
fn valid_model(dir: &Path) -> PathBuf {
    let mut rng = Rng::new(9);
    let (g, ins, outs) = mlp_graph(3, 4, &rng.vec(12, 1.0), &rng.vec(4, 0.1));
    write_model(dir, "m", &g, ModelKind::Timbre, ins, outs)
}

fn load_err(path: &Path, kind: ModelKind, backend: BackendChoice) -> ModelError {
    if backend == BackendChoice::OnnxRuntime {
        init_ort();
    }
    let opts = LoadOptions {
        backend,
        runtime: RuntimeSearch::explicit(PathBuf::new()),
    };
    match load_model_with(path, Some(kind), &opts) {
        Ok(m) => panic!(
            "expected an error, loaded {} on {}",
            path.display(),
            m.backend
        ),
        Err(e) => e,
    }
}

fn assert_names(err: &ModelError, file: &Path) {
    let name = file.file_name().unwrap().to_str().unwrap();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains(name), "message does not name {name}: {text}");
    assert_eq!(err.path().file_name(), file.file_name(), "{text}");
}

/// Rewrites the manifest's JSON with `edit`.
fn edit_manifest(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// Replaces the ONNX file with `bytes` and updates the manifest's hash to match, so the
/// pipeline gets past the hash check to the step under test.
fn replace_onnx(manifest: &Path, bytes: &[u8]) -> PathBuf {
    let onnx = manifest.with_extension("onnx");
    std::fs::write(&onnx, bytes).unwrap();
    let hash = sha256_bytes(bytes);
    edit_manifest(manifest, |v| v["onnx_sha256"] = hash.into());
    onnx
}

#[test]
fn valid_model_loads_on_tract() {
    let dir = tempfile::tempdir().unwrap();
    let m = load_model(
        valid_model(dir.path()),
        ModelKind::Timbre,
        BackendChoice::Tract,
    )
    .unwrap();
    assert_eq!(m.backend, Backend::Tract);
    assert_eq!(m.manifest.name, "m");
    assert_eq!(m.paths.onnx, dir.path().join("m.onnx"));
}

#[test]
fn missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.json");
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(matches!(e, ModelError::ManifestMissing { .. }), "{e}");
    assert_names(&e, &p);
}

#[test]
fn missing_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    std::fs::remove_file(dir.path().join("m.onnx")).unwrap();
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(matches!(e, ModelError::OnnxMissing { .. }), "{e}");
    assert_names(&e, &dir.path().join("m.onnx"));
    assert!(
        e.to_string().contains("m.json"),
        "should also name the manifest: {e}"
    );
}

#[test]
fn truncated_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let bytes = std::fs::read(dir.path().join("m.onnx")).unwrap();
    let onnx = replace_onnx(&p, &bytes[..bytes.len() / 2]);
    for backend in [BackendChoice::Tract, BackendChoice::OnnxRuntime] {
        let e = load_err(&p, ModelKind::Timbre, backend);
        assert!(matches!(e, ModelError::NotOnnx { .. }), "{e}");
        assert_names(&e, &onnx);
    }
}

#[test]
fn random_bytes_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let mut rng = Rng::new(10);
    let junk: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    let onnx = replace_onnx(&p, &junk);
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(matches!(e, ModelError::NotOnnx { .. }), "{e}");
    assert_names(&e, &onnx);
}

#[test]
fn wrong_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    edit_manifest(&p, |v| v["onnx_sha256"] = "ab".repeat(32).into());
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    match &e {
        ModelError::HashMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &"ab".repeat(32));
            assert_eq!(
                actual,
                &continuo::model::sha256_file(dir.path().join("m.onnx")).unwrap()
            );
        }
        other => panic!("expected HashMismatch, got {other}"),
    }
    assert_names(&e, &dir.path().join("m.onnx"));
}

#[test]
fn manifest_missing_required_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    edit_manifest(&p, |v| {
        v.as_object_mut().unwrap().remove("inputs");
    });
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(
        matches!(&e, ModelError::ManifestParse { reason, .. } if reason.contains("inputs")),
        "{e}"
    );
    assert_names(&e, &p);
}

#[test]
fn manifest_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    std::fs::write(&p, "{ this is not json").unwrap();
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(matches!(e, ModelError::ManifestParse { .. }), "{e}");
    assert_names(&e, &p);
}

#[test]
fn future_contract_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    edit_manifest(&p, |v| v["contract_version"] = 99.into());
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(
        matches!(
            e,
            ModelError::UnsupportedContractVersion {
                found: 99,
                supported: continuo::model::manifest::CONTRACT_VERSION,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, &p);
    assert!(e.to_string().contains("99"));
}

#[test]
fn wrong_kind() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    let tw = random_token_weights(&mut rng, 20, 4);
    let (g, ins, outs) = token_graph(&tw);
    let p = write_model(dir.path(), "phrase", &g, ModelKind::Continuation, ins, outs);
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(
        matches!(
            e,
            ModelError::WrongKind {
                expected: ModelKind::Timbre,
                found: ModelKind::Continuation,
                ..
            }
        ),
        "{e}"
    );
    assert_names(&e, &p);
    // and the same file loads as what it is
    load_model(&p, ModelKind::Continuation, BackendChoice::Tract).unwrap();
}

#[test]
fn input_name_differs_from_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    edit_manifest(&p, |v| v["inputs"][0]["name"] = "features".into());
    for backend in [BackendChoice::Tract, BackendChoice::OnnxRuntime] {
        let e = load_err(&p, ModelKind::Timbre, backend);
        match &e {
            ModelError::IoMismatch { detail, .. } => {
                assert!(
                    detail.contains("`features`") && detail.contains("`x`"),
                    "{detail}"
                )
            }
            other => panic!("expected IoMismatch, got {other}"),
        }
        assert_names(&e, &dir.path().join("m.onnx"));
    }
}

#[test]
fn dtype_rank_and_dim_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 4] = [
        ("manifest says i64", |v| {
            v["inputs"][0]["dtype"] = "i64".into()
        }),
        ("rank", |v| {
            v["inputs"][0]["shape"] = serde_json::json!([1, 3])
        }),
        ("is 5 in the manifest but 3", |v| {
            v["inputs"][0]["shape"] = serde_json::json!([1, "T", 5])
        }),
        ("2 outputs", |v| {
            let extra = v["outputs"][0].clone();
            let mut extra = extra;
            extra["name"] = "z".into();
            v["outputs"].as_array_mut().unwrap().push(extra);
        }),
    ];
    let original = std::fs::read_to_string(&p).unwrap();
    for (needle, edit) in cases {
        std::fs::write(&p, &original).unwrap();
        edit_manifest(&p, edit);
        for backend in [BackendChoice::Tract, BackendChoice::OnnxRuntime] {
            let e = load_err(&p, ModelKind::Timbre, backend);
            assert!(matches!(e, ModelError::IoMismatch { .. }), "{needle}: {e}");
            assert!(
                e.to_string().contains(needle),
                "{needle} on {backend:?}: {e}"
            );
        }
    }
}

#[test]
fn unsupported_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = GraphBuilder::new("bad");
    let shape = [Dim::from(1), Dim::from(4)];
    let x = g.input("x", Dtype::F32, &shape);
    g.node("FooBarOp", &[&x], &["y"], vec![]);
    g.output("y", "y", Dtype::F32, &shape);
    let spec = |n: &str| vec![TensorSpec::new(n, Dtype::F32, shape.clone())];
    let p = write_model(
        dir.path(),
        "bad",
        &g,
        ModelKind::Timbre,
        spec("x"),
        spec("y"),
    );
    for backend in [BackendChoice::Tract, BackendChoice::OnnxRuntime] {
        let e = load_err(&p, ModelKind::Timbre, backend);
        assert!(
            matches!(&e, ModelError::UnsupportedOperator { op, .. } if op == "FooBarOp"),
            "{backend:?}: {e}"
        );
        assert_names(&e, &dir.path().join("bad.onnx"));
    }
}

#[test]
fn unsupported_opset() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let onnx = dir.path().join("m.onnx");
    let mut model = ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    model.opset_import[0].version = 99;
    replace_onnx(&p, &model.encode_to_vec());
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(
        matches!(e, ModelError::UnsupportedOpset { version: 99, .. }),
        "{e}"
    );
    assert_names(&e, &onnx);
}

#[test]
fn warm_up_rejects_non_finite_output() {
    // y = x / x is NaN for the all-zero warm-up input.
    let dir = tempfile::tempdir().unwrap();
    let mut g = GraphBuilder::new("nan");
    let shape = [Dim::from(1), Dim::from(4)];
    let x = g.input("x", Dtype::F32, &shape);
    g.node("Div", &[&x, &x], &["y"], vec![]);
    g.output("y", "y", Dtype::F32, &shape);
    let spec = |n: &str| vec![TensorSpec::new(n, Dtype::F32, shape.clone())];
    let p = write_model(
        dir.path(),
        "nan",
        &g,
        ModelKind::Timbre,
        spec("x"),
        spec("y"),
    );
    for backend in [BackendChoice::Tract, BackendChoice::OnnxRuntime] {
        let e = load_err(&p, ModelKind::Timbre, backend);
        assert!(
            matches!(&e, ModelError::WarmupFailed { reason, .. } if reason.contains("NaN")),
            "{e}"
        );
        assert_names(&e, &dir.path().join("nan.onnx"));
    }
}

#[test]
fn onnx_runtime_requested_but_library_missing_is_an_error() {
    // Uses a path that does not exist; does not touch the process-wide runtime if another
    // test already initialised it, in which case the request succeeds (checked below).
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let opts = LoadOptions {
        backend: BackendChoice::OnnxRuntime,
        runtime: RuntimeSearch::explicit(dir.path().join("libonnxruntime.so")),
    };
    match load_model_with(&p, Some(ModelKind::Timbre), &opts) {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    ModelError::Backend {
                        backend: Backend::OnnxRuntime,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("libonnxruntime.so"), "{e}");
        }
        Ok(m) => assert!(
            continuo::model::backend::onnx_runtime_if_initialised().is_some(),
            "loaded on {} without a runtime",
            m.backend
        ),
    }
}

#[test]
fn scan_lists_valid_and_broken_models() {
    let dir = tempfile::tempdir().unwrap();
    valid_model(dir.path());
    let mut rng = Rng::new(12);
    let (g, ins, outs) = mlp_graph(2, 2, &rng.vec(4, 1.0), &rng.vec(2, 0.1));
    let broken = write_model(dir.path(), "broken", &g, ModelKind::Timbre, ins, outs);
    edit_manifest(&broken, |v| v["onnx_sha256"] = "0".repeat(64).into());
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let dirs = ModelDirs::new([dir.path().join("does-not-exist"), dir.path().to_path_buf()]);
    let found = scan(&dirs);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].path, broken);
    assert!(matches!(
        found[0].result,
        Err(ModelError::HashMismatch { .. })
    ));
    assert_eq!(found[1].path.file_name().unwrap(), "m.json");
    assert_eq!(found[1].result.as_ref().unwrap().name, "m");
    assert_eq!(dirs.find("m"), Some(dir.path().join("m.json")));
    assert_eq!(dirs.find("zzz"), None);
}

#[test]
fn standard_dirs_order() {
    let explicit = PathBuf::from("/opt/my-models");
    let dirs = ModelDirs::standard(std::slice::from_ref(&explicit));
    assert_eq!(dirs.dirs[0], explicit);
    // bundled dirs come next, the user dir last
    assert!(dirs.dirs[1].ends_with("models"));
    if let Some(user) = continuo::model::lookup::user_model_dir() {
        assert_eq!(dirs.dirs.last(), Some(&user));
        assert!(user.ends_with("continuo/models"));
    }
}

#[test]
fn run_rejects_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = load_model(
        valid_model(dir.path()),
        ModelKind::Timbre,
        BackendChoice::Tract,
    )
    .unwrap();
    let x = [0.0f32; 6];
    let cases = [
        (vec![], "takes 1 inputs, 0 given"),
        (
            vec![continuo::model::TensorView::i64(&[1, 1, 3], &[0, 1, 2])],
            "is f32, i64 given",
        ),
        (
            vec![continuo::model::TensorView::f32(&[1, 1, 3], &x)],
            "needs 3 elements, 6 given",
        ),
    ];
    for (inputs, needle) in cases {
        let e = m.session.run(&inputs).unwrap_err();
        assert!(matches!(e, ModelError::Backend { .. }), "{e}");
        assert!(
            e.to_string().contains(needle) && e.to_string().contains("m.onnx"),
            "{e}"
        );
    }
    // and a correct call still works afterwards
    let out = m
        .session
        .run(&[continuo::model::TensorView::f32(&[1, 2, 3], &x)])
        .unwrap();
    assert_eq!(out[0].shape, vec![1, 2, 4]);
}

// ---------------------------------------------------------------------------------------------
// Hostile models: every count is checked against its cap before anything is sized by it, and a
// style that fails is refused at load or replaced hop by hop by what is still valid.
// ---------------------------------------------------------------------------------------------

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Copies the shipped model `name` into `dir` as `<stem>.json`/`.onnx`, editing the manifest.
fn copy_shipped(
    dir: &Path,
    name: &str,
    stem: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let onnx = dir.join(format!("{stem}.onnx"));
    std::fs::copy(repo_path(&format!("models/{name}.onnx")), onnx).unwrap();
    let manifest = dir.join(format!("{stem}.json"));
    std::fs::copy(repo_path(&format!("models/{name}.json")), &manifest).unwrap();
    edit_manifest(&manifest, |v| {
        v.as_object_mut().unwrap().remove("onnx_file");
        edit(v)
    });
    manifest
}

/// The first second of the 16 kHz melody fixture.
fn melody() -> Vec<f32> {
    let audio = continuo::wav::read(&repo_path("tests/fixtures/melody_16k.wav")).unwrap();
    assert_eq!(audio.sample_rate, 16_000);
    audio.channels[0][..16_000].to_vec()
}

fn voice(a: &Path, b: Option<&Path>, morph: f32) -> (TimbreVoice, Arc<StyleStatus>) {
    let shared = Arc::new(SharedStyleSettings::default());
    shared.store(&StyleSettings {
        morph,
        ..StyleSettings::default()
    });
    let status = Arc::new(StyleStatus::default());
    let choice = StyleChoice {
        a: a.to_str().unwrap().into(),
        b: b.map(|b| b.to_str().unwrap().into()),
    };
    let voice = load_voice(
        &choice,
        &ModelDirs::new([]),
        BackendChoice::Tract,
        LatencyMode::Quality,
        shared,
        status.clone(),
    )
    .unwrap_or_else(|e| panic!("{}", chain_message(&e)));
    (voice, status)
}

/// The voice in the plugin's processor at the melody's rate (16 kHz), mono.
fn processor(voice: TimbreVoice) -> StyleProcessor {
    StyleProcessor::new(16_000.0, 1, LatencyMode::Quality, Some(voice)).expect("processor")
}

fn run_voice(voice: TimbreVoice, input: &[f32]) -> (Vec<f32>, usize) {
    let mut processor = processor(voice);
    let hop = processor.hop_size();
    let mut output = Vec::with_capacity(input.len() + hop);
    let mut out = vec![vec![0.0; hop]];
    for x in input.chunks_exact(hop) {
        processor.process_hop(&[x.to_vec()], &mut out);
        output.extend_from_slice(&out[0]);
    }
    (output, processor.latency_samples())
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// A timbre model honouring the style contract (16 kHz, hop 64, T = 1) that passes loading
/// and the trial run (all-zero features) but fails every real hop: its `harmonics` output is
/// `N + round(100 · f0_norm)` wide, and a real f0 is never 0.
fn flaky_timbre_model(dir: &Path, stem: &str) -> PathBuf {
    const N: usize = 8;
    const M: usize = 4;
    const H: usize = 3;
    let fixed = |dims: &[usize]| dims.iter().map(|&d| Dim::from(d)).collect::<Vec<_>>();
    let mut g = GraphBuilder::new("flaky");
    let x = g.input("features", Dtype::F32, &fixed(&[1, 1, 2]));
    let h0 = g.input("h0", Dtype::F32, &fixed(&[1, 1, H]));
    let f0 = g.slice(&x, &[0], &[1], &[2]); // [1, 1, 1]
    let scale = g.initializer_f32("scale", &[], &[100.0]);
    let scaled = g.mul(&f0, &scale);
    g.node(
        "ReduceMax",
        &[&scaled],
        &["scalar"],
        vec![Attr::ints("axes", &[0, 1, 2]), Attr::int("keepdims", 0)],
    );
    g.node("Cast", &["scalar"], &["extra"], vec![Attr::int("to", 7)]);
    let n = g.initializer_i64("n", &[], &[N as i64]);
    let limit = g.add("extra", &n);
    let zero = g.initializer_i64("zero", &[], &[0]);
    let one = g.initializer_i64("one", &[], &[1]);
    g.node("Range", &[&zero, &limit, &one], &["range"], vec![]);
    g.node("Cast", &["range"], &["range_f"], vec![Attr::int("to", 1)]);
    let harmonics = g.reshape("range_f", &[1, 1, -1]);
    let amplitude = g.sigmoid(&f0);
    let w = g.initializer_f32("w", &[1, M], &[0.5; M]);
    let noise = g.matmul(&f0, &w);
    let noise = g.sigmoid(&noise);
    let zero_f = g.initializer_f32("zero_f", &[], &[0.0]);
    let h_n = g.add(&h0, &zero_f);
    g.output(&amplitude, "amplitude", Dtype::F32, &fixed(&[1, 1, 1]));
    g.output(
        &harmonics,
        "harmonics",
        Dtype::F32,
        &[Dim::from(1), Dim::from(1), Dim::from("W")],
    );
    g.output(&noise, "noise", Dtype::F32, &fixed(&[1, 1, M]));
    g.output(&h_n, "h_n", Dtype::F32, &fixed(&[1, 1, H]));
    let spec = |name: &str, dims: &[usize]| TensorSpec::new(name, Dtype::F32, fixed(dims));
    let path = write_model(
        dir,
        stem,
        &g,
        ModelKind::Timbre,
        vec![spec("features", &[1, 1, 2]), spec("h0", &[1, 1, H])],
        vec![
            spec("amplitude", &[1, 1, 1]),
            spec("harmonics", &[1, 1, N]),
            spec("noise", &[1, 1, M]),
            spec("h_n", &[1, 1, H]),
        ],
    );
    let shipped = Manifest::load(repo_path("models/continuo-violin.json")).unwrap();
    let mut manifest = Manifest::load(&path).unwrap();
    manifest.sample_rate = shipped.sample_rate;
    manifest.hop_size = shipped.hop_size;
    manifest.frame_rate_hz = shipped.frame_rate_hz;
    manifest.features = shipped.features;
    manifest.synth = Some(SynthSpec {
        harmonics: N as u32,
        noise_bands: M as u32,
        noise_band_spacing: "linear".into(),
        max_hz: 8_000.0,
    });
    manifest.save(&path).unwrap();
    path
}

#[test]
fn hostile_manifest_counts_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let original = std::fs::read_to_string(&p).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &[&str]); 5] = [
        // The model leaves this dim symbolic, so the old warm-up allocated 4 Gi × 3 floats.
        (
            |v| v["inputs"][0]["shape"] = serde_json::json!([1, 4_294_967_295u64, 3]),
            &["`inputs[0]` (`x`)", "`shape[1]` is 4294967295"],
        ),
        // ×3 overflows usize: the old warm-up's shape product panicked in debug builds.
        (
            |v| v["inputs"][0]["shape"] = serde_json::json!([1, 9_223_372_036_854_775_807u64, 3]),
            &["`shape[1]` is 9223372036854775807"],
        ),
        (
            |v| {
                v["synth"] = serde_json::json!({
                    "harmonics": 4_294_967_295u64,
                    "noise_bands": 4,
                    "noise_band_spacing": "linear",
                    "max_hz": 8000.0
                })
            },
            &["`synth.harmonics` is 4294967295"],
        ),
        // An absurd band would size nothing, but it would make the synth render nonsense.
        (
            |v| {
                v["synth"] = serde_json::json!({
                    "harmonics": 8,
                    "noise_bands": 4,
                    "noise_band_spacing": "linear",
                    "max_hz": 1e12
                })
            },
            &["`synth.max_hz` is 1000000000000"],
        ),
        (
            |v| v["outputs"][0]["shape"] = serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1, 1]),
            &["`outputs[0]` (`y`)", "rank 9"],
        ),
    ];
    for (edit, needles) in cases {
        std::fs::write(&p, &original).unwrap();
        edit_manifest(&p, edit);
        let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
        assert!(matches!(e, ModelError::ManifestInvalid { .. }), "{e}");
        assert_names(&e, &p);
        for needle in needles {
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }
    assert!(original.len() < MAX_MANIFEST_BYTES as usize);
}

#[test]
fn oversized_manifest_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    // Valid JSON, padded past the cap with whitespace.
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(&" ".repeat(MAX_MANIFEST_BYTES as usize));
    std::fs::write(&p, text).unwrap();
    let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
    assert!(matches!(e, ModelError::FileTooLarge { .. }), "{e}");
    assert_names(&e, &p);
}

#[test]
fn hostile_onnx_dims_are_refused_before_a_backend_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = valid_model(dir.path());
    let onnx = dir.path().join("m.onnx");
    let original = ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    type Edit = fn(&mut ModelProto);
    let cases: [(Edit, &str); 3] = [
        // A constant whose dims claim 2^40 floats while it holds 12.
        (
            |m| m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 40],
            "holds 48 bytes",
        ),
        // Dims whose product overflows.
        (
            |m| m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 62, 1 << 62],
            "invalid dims",
        ),
        // A declared output dim far above the cap.
        (
            |m| {
                use continuo::model::onnx_writer::proto::{tensor_shape_proto, type_proto};
                let output = &mut m.graph.as_mut().unwrap().output[0];
                let Some(type_proto::Value::TensorType(t)) =
                    output.r#type.as_mut().unwrap().value.as_mut()
                else {
                    unreachable!("the writer declares tensor outputs")
                };
                t.shape.as_mut().unwrap().dim[2].value =
                    Some(tensor_shape_proto::dimension::Value::DimValue(1 << 40));
            },
            "at most 1048576",
        ),
    ];
    for (edit, needle) in cases {
        let mut model = original.clone();
        edit(&mut model);
        replace_onnx(&p, &model.encode_to_vec());
        let e = load_err(&p, ModelKind::Timbre, BackendChoice::Tract);
        assert!(
            matches!(&e, ModelError::NotOnnx { reason, .. } if reason.contains(needle)),
            "{needle}: {e}"
        );
        assert_names(&e, &onnx);
    }
    assert_eq!(MAX_FIXED_DIM, 1 << 20);
}

/// Why Style refuses the timbre model at `path` (it must refuse it).
fn style_load_error(path: &Path) -> String {
    let e = TimbreModel::load(
        path.to_str().unwrap(),
        &ModelDirs::new([]),
        BackendChoice::Tract,
    )
    .expect_err("refused");
    chain_message(&e)
}

#[test]
fn style_models_with_unusable_synth_counts_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(u32, &str); 3] = [
        (4_294_967_295, "`synth.harmonics` is 4294967295"),
        // Within the manifest cap but above what the synthesiser renders.
        (2000, "renders at most 1024"),
        // Not what the model outputs.
        (
            49,
            "output `harmonics` is 48 wide but synth.harmonics is 49",
        ),
    ];
    for (harmonics, needle) in cases {
        let p = copy_shipped(dir.path(), "continuo-flute", "BROKEN", |v| {
            v["synth"]["harmonics"] = harmonics.into()
        });
        let text = style_load_error(&p);
        assert!(
            text.contains("BROKEN.json") && text.contains(needle),
            "{needle}: {text}"
        );
    }
}

#[test]
fn style_models_with_an_f0_floor_style_cannot_track_are_refused_naming_the_field() {
    // The analysis is sized by the floor (two periods of it): 1 Hz would ask for a 2 s pitch
    // frame. Style tracks from 50 Hz to 1000 Hz floors.
    let dir = tempfile::tempdir().unwrap();
    for floor in [1.0, 49.0, 1500.0, -100.0] {
        let p = copy_shipped(dir.path(), "continuo-violin", "BROKEN", |v| {
            v["features"]["f0_min_hz"] = floor.into()
        });
        let text = style_load_error(&p);
        assert!(
            text.contains("BROKEN.json") && text.contains("`features.f0_min_hz`"),
            "{floor}: {text}"
        );
    }
}

#[test]
fn a_model_trained_from_a_lower_f0_floor_is_analysed_from_it_and_costs_one_frame() {
    // The shipped violin declared as trained from the default 100 Hz, and from 64 Hz (a
    // cello's floor): the 64 Hz analysis needs one more 4 ms frame of look-ahead, and a running
    // plugin can keep it on the 100 Hz analysis (and latency) it reported until the host
    // restarts it.
    let dir = tempfile::tempdir().unwrap();
    let violin = copy_shipped(dir.path(), "continuo-violin", "violin", |v| {
        v["features"]["f0_min_hz"] = 100.0.into()
    });
    let low = copy_shipped(dir.path(), "continuo-violin", "low", |v| {
        v["features"]["f0_min_hz"] = 64.0.into()
    });
    let latency = |voice: TimbreVoice| {
        StyleProcessor::new(48_000.0, 1, LatencyMode::Quality, Some(voice))
            .expect("processor")
            .latency_samples()
    };
    let (violin_voice, _) = voice(&violin, None, 0.0);
    assert_eq!(violin_voice.models_f0_floor_hz(), 100.0);
    let (low_voice, _) = voice(&low, None, 0.0);
    assert_eq!(low_voice.models_f0_floor_hz(), 64.0);
    assert_eq!(low_voice.f0_floor_hz(), 64.0);
    let violin_latency = latency(violin_voice);
    assert_eq!(
        latency(low_voice),
        violin_latency + 192,
        "one frame at 48 kHz"
    );
    // Morphing with it: the lower floor of the two.
    let (morph, _) = voice(&violin, Some(&low), 0.5);
    assert_eq!(morph.models_f0_floor_hz(), 64.0);
    let (mut kept, _) = voice(&low, None, 0.0);
    kept.set_f0_floor(100.0).expect("floor");
    assert_eq!(
        latency(kept),
        violin_latency,
        "the running analysis keeps its latency"
    );
    // Nothing to play (an empty slot) while the low floor runs: the dry path keeps its latency.
    let dry = StyleProcessor::dry(48_000.0, 1, LatencyMode::Quality, 64.0).expect("dry");
    assert_eq!(dry.latency_samples(), violin_latency + 192);
    assert_eq!(dry.f0_floor_hz(), 64.0);
}

#[test]
fn a_refused_style_b_leaves_style_a_playing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let a = copy_shipped(dir.path(), "continuo-violin", "violin", |_| {});
    let broken = copy_shipped(dir.path(), "continuo-flute", "BROKEN", |v| {
        v["synth"]["harmonics"] = 4_294_967_295u32.into()
    });
    let input = melody();
    let (alone, _) = voice(&a, None, 0.0);
    let (mut morphing, status) = voice(&a, Some(&broken), 0.5);
    assert_eq!(morphing.style_names().1, None, "B is not playing");
    assert_eq!(status.load_errors.load(Ordering::Relaxed), 1);
    let why = status.style_b_refused().expect("the refusal is kept");
    assert!(
        why.contains("BROKEN.json") && why.contains("synth.harmonics"),
        "{why}"
    );
    assert!(status.message().contains(&why), "{}", status.message());
    let refusal = morphing.take_style_b_refusal().expect("handed over once");
    assert!(chain_message(&refusal).contains("BROKEN.json"));
    assert!(morphing.take_style_b_refusal().is_none());

    let (expected, _) = run_voice(alone, &input);
    let (got, _) = run_voice(morphing, &input);
    assert!(peak(&expected) > 0.01, "style A plays: {}", peak(&expected));
    assert_eq!(got, expected, "style A alone, exactly");
    assert_eq!(status.model_errors.load(Ordering::Relaxed), 0);
}

/// The flute shipped before full band: contract v1, synthesised at 16 kHz (an 8 kHz band).
fn v1_flute() -> PathBuf {
    repo_path("tests/fixtures/models/continuo-flute-v1.json")
}

#[test]
fn a_v1_timbre_model_migrates_to_its_8_khz_band_and_plays() {
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(v1_flute()).unwrap()).unwrap();
    assert_eq!(raw["contract_version"], 1, "the fixture is a v1 manifest");
    let manifest = Manifest::load(v1_flute()).unwrap_or_else(|e| panic!("{}", chain_message(&e)));
    let synth = manifest.synth.expect("a timbre manifest has a synth");
    assert_eq!(
        synth.max_hz, 8_000.0,
        "migrated to its analysis rate's Nyquist"
    );
    let (flute, status) = voice(&v1_flute(), None, 0.0);
    let (out, _) = run_voice(flute, &melody());
    assert!(out.iter().all(|y| y.is_finite()));
    assert!(peak(&out) > 0.01, "the v1 model plays: {}", peak(&out));
    assert_eq!(status.model_errors.load(Ordering::Relaxed), 0);
}

#[test]
fn a_style_b_filling_another_band_morphs_in_style_a_band() {
    // A v1 flute (8 kHz band) as style B of the full-band violin: B is restated in A's band
    // layout (not refused), so the morph changes the output, and it stays finite and bounded.
    let dir = tempfile::tempdir().unwrap();
    let a = copy_shipped(dir.path(), "continuo-violin", "violin", |_| {});
    let input = melody();
    let (alone, _) = voice(&a, None, 0.0);
    let (morphing, status) = voice(&a, Some(&v1_flute()), 0.5);
    assert_eq!(
        morphing.style_names().1.as_deref(),
        Some("continuo-flute-v1"),
        "B plays"
    );
    assert!(status.style_b_refused().is_none());
    let (expected, _) = run_voice(alone, &input);
    let (got, _) = run_voice(morphing, &input);
    assert!(got.iter().all(|y| y.is_finite() && y.abs() <= 4.0));
    assert!(peak(&got) > 0.01, "never silence");
    assert_ne!(got, expected, "the morph is heard");
}

#[test]
fn hops_whose_style_b_call_fails_play_style_a_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = copy_shipped(dir.path(), "continuo-violin", "violin", |_| {});
    let flaky = flaky_timbre_model(dir.path(), "flaky");
    let input = melody();
    let (alone, _) = voice(&a, None, 0.0);
    let (morphing, status) = voice(&a, Some(&flaky), 0.5);
    assert_eq!(
        morphing.style_names().1.as_deref(),
        Some("flaky"),
        "B loads"
    );
    let (expected, _) = run_voice(alone, &input);
    let (got, _) = run_voice(morphing, &input);
    let failures = status.model_errors.load(Ordering::Relaxed);
    assert!(failures > 200, "every real hop fails B: {failures}");
    assert!(peak(&got) > 0.01, "never silence: {}", peak(&got));
    assert_eq!(got, expected, "style A alone, exactly");
    let message = status.message();
    assert!(
        message.contains("style A alone") && message.contains("flaky.json"),
        "{message}"
    );
}

#[test]
fn hops_whose_style_a_call_fails_play_the_dry_input() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = flaky_timbre_model(dir.path(), "flaky");
    let input = melody();
    let (voice, status) = voice(&flaky, None, 0.0);
    let (output, latency) = run_voice(voice, &input);
    assert!(status.model_errors.load(Ordering::Relaxed) > 200);
    assert!(
        status.message().contains("dry input"),
        "{}",
        status.message()
    );
    // After the first failing frame's crossfade: the input, delayed by the reported latency.
    let settled = latency + 2 * 64;
    for n in settled..output.len() {
        assert_eq!(output[n], input[n - latency], "sample {n}");
    }
    assert!(peak(&output[settled..]) > 0.1, "never silence");
}

fn continuo_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_continuo"))
        .args(args)
        .output()
        .expect("run continuo")
}

#[test]
fn cli_refuses_a_broken_style_b_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = copy_shipped(dir.path(), "continuo-flute", "BROKEN", |v| {
        v["synth"]["harmonics"] = 4_294_967_295u32.into()
    });
    let out = dir.path().join("out.wav");
    let run = continuo_cli(&[
        "style",
        repo_path("tests/fixtures/melody_16k.wav").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "continuo-violin",
        "--morph",
        broken.to_str().unwrap(),
        "--amount",
        "0.5",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("BROKEN.json") && stderr.contains("synth.harmonics"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written for a refused style");
}

#[test]
fn cli_exits_non_zero_when_model_calls_failed() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = flaky_timbre_model(dir.path(), "flaky");
    let input = dir.path().join("in.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    continuo::wav::write(&input, &[melody()], spec).unwrap();
    let out = dir.path().join("out.wav");
    let run = continuo_cli(&[
        "style",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "continuo-violin",
        "--morph",
        flaky.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("model calls failed") && stderr.contains("flaky.json"),
        "{stderr}"
    );
    // Written for inspection, with style A where B failed: not silent.
    let written = continuo::wav::read(&out).expect("output written");
    assert!(peak(&written.channels[0]) > 0.01);
}

#[test]
fn cli_errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    // An I/O error: the OS's words once, not once per link of the chain.
    let missing = dir.path().join("missing.mid");
    let run = continuo_cli(&[
        "continue",
        missing.to_str().unwrap(),
        "-o",
        dir.path().join("out.mid").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("missing.mid"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );

    // A manifest that is a directory: ModelError::Io through StyleError.
    let model_dir = dir.path().join("dir.json");
    std::fs::create_dir(&model_dir).unwrap();
    let run = continuo_cli(&[
        "style",
        repo_path("tests/fixtures/melody_16k.wav").to_str().unwrap(),
        "-o",
        dir.path().join("out.wav").to_str().unwrap(),
        "--model",
        model_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("dir.json"), "{stderr}");
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");

    // A DSP error wrapped in a style error.
    let error = continuo::style::StyleError::from(continuo::dsp::DspError::InvalidConfig {
        parameter: "n_harmonics",
        reason: "must be at most 1024",
    });
    let text = chain_message(&error);
    assert_eq!(text.matches("must be at most 1024").count(), 1, "{text}");
}
