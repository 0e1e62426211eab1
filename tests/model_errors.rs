//! Every error class, produced by a real broken file in a temporary directory. Each test
//! checks the variant and that the message names the file.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use continuo::model::loader::{load_model_with, LoadOptions};
use continuo::model::manifest::{sha256_bytes, ModelKind};
use continuo::model::onnx_writer::proto::ModelProto;
use continuo::model::onnx_writer::GraphBuilder;
use continuo::model::{
    load_model, scan, Backend, BackendChoice, Dim, Dtype, ModelDirs, ModelError, RuntimeSearch,
    TensorSpec,
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
                supported: 1,
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
