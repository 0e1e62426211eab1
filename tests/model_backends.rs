//! Both backends run writer-generated models through the full loading pipeline and agree
//! with each other and with naive Rust reference computations. Needs `ORT_DYLIB_PATH`.

mod common;

use common::*;
use continuo::model::loader::{load_model_with, LoadOptions, LoadedModel};
use continuo::model::manifest::ModelKind;
use continuo::model::{Backend, BackendChoice, RuntimeSearch, Tensor, TensorView};

fn load(path: &std::path::Path, kind: ModelKind, backend: BackendChoice) -> LoadedModel {
    if backend == BackendChoice::OnnxRuntime {
        init_ort();
    }
    let opts = LoadOptions {
        backend,
        runtime: RuntimeSearch::explicit(ort_dylib_or_none()),
    };
    load_model_with(path, Some(kind), &opts).unwrap_or_else(|e| panic!("load {backend:?}: {e}"))
}

/// For tract-only loads the runtime search is irrelevant; avoid requiring the env var there.
fn ort_dylib_or_none() -> std::path::PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(Into::into)
        .unwrap_or_default()
}

fn both(path: &std::path::Path, kind: ModelKind) -> [LoadedModel; 2] {
    let ort = load(path, kind, BackendChoice::OnnxRuntime);
    assert_eq!(ort.backend, Backend::OnnxRuntime);
    assert!(ort.fallback_reason.is_none());
    let tract = load(path, kind, BackendChoice::Tract);
    assert_eq!(tract.backend, Backend::Tract);
    [ort, tract]
}

fn run(m: &mut LoadedModel, inputs: &[TensorView<'_>]) -> Vec<Tensor> {
    m.session
        .run(inputs)
        .unwrap_or_else(|e| panic!("run on {}: {e}", m.backend))
}

#[test]
fn dense_tanh_matches_reference_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(1);
    let (i, o, t) = (3, 4, 5);
    let (w, b) = (rng.vec(i * o, 1.0), rng.vec(o, 0.5));
    let (g, ins, outs) = mlp_graph(i, o, &w, &b);
    let path = write_model(dir.path(), "mlp", &g, ModelKind::Timbre, ins, outs);
    let x = rng.vec(t * i, 1.0);
    let shape = [1, t, i];
    let expected: Vec<f32> = dense_ref(&x, i, o, &w, &b)
        .iter()
        .map(|v| v.tanh())
        .collect();
    // sanity: the reference is not trivially saturated or zero
    assert!(expected.iter().any(|v| v.abs() > 0.1) && expected.iter().all(|v| v.abs() < 0.9999));
    let mut results = Vec::new();
    for mut m in both(&path, ModelKind::Timbre) {
        let out = run(&mut m, &[TensorView::f32(&shape, &x)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].shape, vec![1, t, o], "{}", m.backend);
        let y = out[0].as_f32().unwrap().to_vec();
        let d = max_abs_diff(&y, &expected);
        assert!(d < 1e-5, "{} vs reference: {d}", m.backend);
        results.push(y);
    }
    assert!(max_abs_diff(&results[0], &results[1]) < 1e-4);
}

fn gru_case(linear_before_reset: bool, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let (i, h, t) = (3, 5, 7);
    let weights = random_gru(&mut rng, i, h, linear_before_reset);
    let (g, ins, outs) = gru_graph(&weights);
    let path = write_model(dir.path(), "gru", &g, ModelKind::Timbre, ins, outs);
    let x = rng.vec(t * i, 1.0);
    let h0a = rng.vec(h, 0.8);
    let h0b = rng.vec(h, 0.8);
    let (xs, hs) = ([1, t, i], [1, 1, h]);
    let mut per_backend = Vec::new();
    for mut m in both(&path, ModelKind::Timbre) {
        let mut all = Vec::new();
        // Two different h0 in a row: the second call must honour its h0 (a reused tract state
        // would silently keep the first call's final state).
        for h0 in [&h0a, &h0b] {
            let (ys_ref, hn_ref) = gru_ref(&weights, &x, h0);
            let out = run(
                &mut m,
                &[TensorView::f32(&xs, &x), TensorView::f32(&hs, h0)],
            );
            assert_eq!(out[0].shape, vec![1, t, h]);
            assert_eq!(out[1].shape, vec![1, 1, h]);
            let (y, hn) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
            let dy = max_abs_diff(y, &ys_ref);
            let dh = max_abs_diff(hn, &hn_ref);
            assert!(
                dy < 1e-5 && dh < 1e-5,
                "{} lbr={linear_before_reset}: y {dy}, h_n {dh}",
                m.backend
            );
            all.extend_from_slice(y);
        }
        // State threading: running the two halves with h_n fed back equals one full run.
        let split = 3;
        let first = run(
            &mut m,
            &[
                TensorView::f32(&[1, split, i], &x[..split * i]),
                TensorView::f32(&hs, &h0a),
            ],
        );
        let rest = t - split;
        let second = run(
            &mut m,
            &[
                TensorView::f32(&[1, rest, i], &x[split * i..]),
                TensorView::f32(&hs, first[1].as_f32().unwrap()),
            ],
        );
        let (_, hn_full) = gru_ref(&weights, &x, &h0a);
        assert!(
            max_abs_diff(second[1].as_f32().unwrap(), &hn_full) < 1e-5,
            "{} chained",
            m.backend
        );
        per_backend.push(all);
    }
    assert!(max_abs_diff(&per_backend[0], &per_backend[1]) < 1e-4);
}

#[test]
fn gru_matches_reference_default_reset() {
    gru_case(false, 2);
}

#[test]
fn gru_matches_reference_linear_before_reset() {
    gru_case(true, 3);
}

/// Negative control: if the writer put the gate blocks in the wrong order, the reference
/// comparison above must be able to tell. A model with z and r exchanged must not match.
#[test]
fn gru_with_swapped_gates_does_not_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(4);
    let (i, h, t) = (3, 5, 7);
    let weights = random_gru(&mut rng, i, h, true);
    let (g, ins, outs) = gru_graph(&swap_z_r(&weights));
    let path = write_model(dir.path(), "gru_swapped", &g, ModelKind::Timbre, ins, outs);
    let x = rng.vec(t * i, 1.0);
    let h0 = rng.vec(h, 0.8);
    let (ys_ref, _) = gru_ref(&weights, &x, &h0);
    for mut m in both(&path, ModelKind::Timbre) {
        let out = run(
            &mut m,
            &[
                TensorView::f32(&[1, t, i], &x),
                TensorView::f32(&[1, 1, h], &h0),
            ],
        );
        let d = max_abs_diff(out[0].as_f32().unwrap(), &ys_ref);
        assert!(
            d > 1e-2,
            "{}: swapped gates matched the reference (diff {d})",
            m.backend
        );
    }
}

#[test]
fn token_step_matches_reference_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(5);
    let tw = random_token_weights(&mut rng, 200, 16);
    let (g, ins, outs) = token_graph(&tw);
    let path = write_model(dir.path(), "phrase", &g, ModelKind::Continuation, ins, outs);
    let mut per_backend = Vec::new();
    for mut m in both(&path, ModelKind::Continuation) {
        let mut h = vec![0.0f32; tw.d];
        let mut h_ref = h.clone();
        let mut logits_all = Vec::new();
        // Feed a few tokens, carrying the state through the model's h_n output.
        for token in [0i64, 17, 199, 42] {
            let out = run(
                &mut m,
                &[
                    TensorView::i64(&[1, 1], &[token]),
                    TensorView::f32(&[1, 1, tw.d], &h),
                ],
            );
            let (logits_ref, hn_ref) = token_ref(&tw, token as usize, &h_ref);
            assert_eq!(out[0].shape, vec![1, 1, tw.vocab]);
            let d = max_abs_diff(out[0].as_f32().unwrap(), &logits_ref);
            assert!(d < 1e-4, "{} token {token}: logits diff {d}", m.backend);
            h = out[1].as_f32().unwrap().to_vec();
            h_ref = hn_ref;
            logits_all.extend_from_slice(out[0].as_f32().unwrap());
        }
        per_backend.push(logits_all);
    }
    assert!(max_abs_diff(&per_backend[0], &per_backend[1]) < 1e-4);
}

#[test]
fn timbre_decoder_agrees_across_backends() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(6);
    let hidden = 32;
    let (g, ins, outs) = decoder_graph(&mut rng, hidden);
    let path = write_model(dir.path(), "decoder", &g, ModelKind::Timbre, ins, outs);
    let feats = rng.vec(DEC_FRAMES * DEC_FEATURES, 1.0);
    let h0 = rng.vec(hidden, 0.5);
    let mut results: Vec<Vec<Tensor>> = Vec::new();
    for mut m in both(&path, ModelKind::Timbre) {
        let out = run(
            &mut m,
            &[
                TensorView::f32(&[1, DEC_FRAMES, DEC_FEATURES], &feats),
                TensorView::f32(&[1, 1, hidden], &h0),
            ],
        );
        assert_eq!(out[1].shape, vec![1, DEC_FRAMES, DEC_HARMONICS]);
        // softmax rows sum to 1
        for row in out[1].as_f32().unwrap().chunks(DEC_HARMONICS) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        results.push(out);
    }
    for (a, b) in results[0].iter().zip(&results[1]) {
        assert_eq!(a.shape, b.shape);
        let d = max_abs_diff(a.as_f32().unwrap(), b.as_f32().unwrap());
        assert!(d < 1e-4, "ORT vs tract: {d}");
    }
}
