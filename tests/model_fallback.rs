//! `BackendChoice::Auto` with no usable runtime library falls back to tract and says why.
//!
//! Its own test binary (= its own process), because ONNX Runtime is initialised once per
//! process: here it must never succeed. The single test sets `ORT_DYLIB_PATH` itself, which
//! is safe because no other test runs in this process.

mod common;

use common::*;
use continuo::model::loader::{load_model_with, LoadOptions};
use continuo::model::manifest::ModelKind;
use continuo::model::{Backend, BackendChoice, ModelError, RuntimeSearch, TensorView};

#[test]
fn auto_falls_back_to_tract_and_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(20);
    let (w, b) = (rng.vec(6, 1.0), rng.vec(2, 0.1));
    let (g, ins, outs) = mlp_graph(3, 2, &w, &b);
    let manifest = write_model(dir.path(), "m", &g, ModelKind::Timbre, ins, outs);

    // 1. the env override points nowhere; 2. a directory holds a "library" that is junk.
    let missing = dir.path().join("nowhere/libonnxruntime.so.1.31.1");
    std::env::set_var("ORT_DYLIB_PATH", &missing);
    let lib_dir = dir.path().join("lib");
    std::fs::create_dir(&lib_dir).unwrap();
    let fake = lib_dir.join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not an ELF file").unwrap();

    let search = RuntimeSearch {
        dirs: vec![lib_dir],
        next_to_this_binary: false,
        ..Default::default()
    };
    let opts = LoadOptions {
        backend: BackendChoice::Auto,
        runtime: search.clone(),
    };
    let mut m = load_model_with(&manifest, Some(ModelKind::Timbre), &opts)
        .expect("Auto must fall back to tract");
    assert_eq!(m.backend, Backend::Tract);
    assert_eq!(m.session.backend(), Backend::Tract);
    let why = m.fallback_reason.clone().expect("fallback reason");
    assert!(
        why.contains(&missing.display().to_string()) && why.contains("does not exist"),
        "{why}"
    );
    assert!(why.contains(&fake.display().to_string()), "{why}");
    // The fallback model really runs and is right.
    let x = rng.vec(3, 1.0);
    let out = m.session.run(&[TensorView::f32(&[1, 1, 3], &x)]).unwrap();
    let expected: Vec<f32> = dense_ref(&x, 3, 2, &w, &b)
        .iter()
        .map(|v| v.tanh())
        .collect();
    assert!(max_abs_diff(out[0].as_f32().unwrap(), &expected) < 1e-5);

    // Asking for ONNX Runtime explicitly is an error with the same reason, not a fallback.
    let opts = LoadOptions {
        backend: BackendChoice::OnnxRuntime,
        runtime: search,
    };
    match load_model_with(&manifest, Some(ModelKind::Timbre), &opts) {
        Err(ModelError::Backend {
            backend: Backend::OnnxRuntime,
            reason,
            ..
        }) => {
            assert!(reason.contains("does not exist"), "{reason}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(m) => panic!("loaded on {} without a runtime", m.backend),
    }

    // With nothing to try at all, the reason says so.
    std::env::remove_var("ORT_DYLIB_PATH");
    let none = RuntimeSearch {
        next_to_this_binary: false,
        ..Default::default()
    };
    let err = continuo::model::onnx_runtime(&none).unwrap_err();
    assert!(
        err.reason.contains("no ONNX Runtime library found"),
        "{err}"
    );
    assert!(err.tried.is_empty());
}
