//! burn weights → a one-token-step ONNX model (via `crate::model::onnx_writer`), verified
//! through `crate::model`'s own runtime against burn's forward pass before anything is
//! written as a model.
//!
//! The step model (what Continuo Phrase calls once per generated token):
//!
//! | name | dtype | shape | meaning |
//! | --- | --- | --- | --- |
//! | `token` (in) | i64 | `[1, 1]` | the latest token id |
//! | `h0` (in) | f32 | `[L, 1, H]` | the state after the previous token (zeros before `BOS`) |
//! | `logits` (out) | f32 | `[1, 1, V]` | unnormalised scores of the next token |
//! | `h_n` (out) | f32 | `[L, 1, H]` | the state to feed back as `h0` |
//!
//! Graph: `Gather` (embedding) → per layer `Slice` of `h0` → `GRU` (one step,
//! `linear_before_reset = 1`) → `Squeeze` → … → `Concat` of the layer states → `MatMul` + `Add`.
//!
//! **Verification** ([`verify`]) runs the ONNX bytes on a backend and burn's forward pass one
//! token at a time over random tokens from a random initial state, carrying the state through
//! each side's own outputs, and reports the largest difference in logits and states. Export
//! refuses to write a model above [`TOLERANCE`]; [`swap_update_reset`] makes the classic wrong
//! export for the negative-control test.

use std::path::Path;

use crate::model::backend::{onnx_runtime, Backend, RuntimeSearch, Session};
use crate::model::onnx_info::inspect;
use crate::model::onnx_writer::{GraphBuilder, GruWeights};
use crate::model::{Dim, Dtype, TensorSpec, TensorView};
use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};

use super::data::SplitMix;
use super::model::ContinuationModel;
use super::training::cpu_device;

/// Largest accepted difference between burn and the exported model (logits and states).
pub const TOLERANCE: f32 = 1e-4;

/// The trained weights in ONNX layout.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWeights {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Embedding width `E`.
    pub d_embed: usize,
    /// Hidden size `H`.
    pub d_hidden: usize,
    /// Embedding table `[V, E]`.
    pub embedding: Vec<f32>,
    /// One ONNX GRU per layer.
    pub layers: Vec<GruWeights>,
    /// Output weights `[H, V]`.
    pub out_w: Vec<f32>,
    /// Output bias `[V]`.
    pub out_b: Vec<f32>,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .expect("float tensors hold f32")
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// Copies the weights out of a burn model. The GRU gate order is already ONNX's (z, r, h):
/// only the matrices are transposed (burn multiplies `x · W`, ONNX stores `W` as `[3H, I]`).
pub fn extract(model: &ContinuationModel) -> StepWeights {
    let embedding = model.embedding.weight.val();
    let [vocab, d_embed] = embedding.dims();
    let d_hidden = model.hidden_size();
    let layers = model
        .layers
        .iter()
        .map(|layer| {
            let [d_input, _] = layer.w_input.val().dims();
            let mut b = values(layer.b_input.val());
            b.extend(values(layer.b_hidden.val()));
            GruWeights {
                input_size: d_input,
                hidden_size: d_hidden,
                w: transpose(&values(layer.w_input.val()), d_input, 3 * d_hidden),
                r: transpose(&values(layer.w_hidden.val()), d_hidden, 3 * d_hidden),
                b,
                linear_before_reset: true,
            }
        })
        .collect();
    StepWeights {
        vocab,
        d_embed,
        d_hidden,
        embedding: values(embedding),
        layers,
        out_w: values(model.output.weight.val()),
        out_b: model
            .output
            .bias
            .as_ref()
            .map(|b| values(b.val()))
            .unwrap_or_else(|| vec![0.0; vocab]),
    }
}

/// The same weights with the update (z) and reset (r) gate blocks exchanged in every layer:
/// the classic export bug, for the negative-control test.
pub fn swap_update_reset(weights: &StepWeights) -> StepWeights {
    let swap = |v: &[f32], block: usize| {
        let mut out = v.to_vec();
        // W and R hold three gate blocks; B holds two groups (input, recurrent) of three.
        for group in 0..v.len() / (3 * block) {
            let base = group * 3 * block;
            out[base..base + block].copy_from_slice(&v[base + block..base + 2 * block]);
            out[base + block..base + 2 * block].copy_from_slice(&v[base..base + block]);
        }
        out
    };
    let mut swapped = weights.clone();
    for layer in &mut swapped.layers {
        let h = layer.hidden_size;
        layer.w = swap(&layer.w, h * layer.input_size);
        layer.r = swap(&layer.r, h * h);
        layer.b = swap(&layer.b, h);
    }
    swapped
}

/// Input and output specs of the step model (the manifest's `inputs`/`outputs`).
pub fn step_specs(
    vocab: usize,
    layers: usize,
    d_hidden: usize,
) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let state = || [Dim::from(layers), Dim::from(1), Dim::from(d_hidden)];
    (
        vec![
            TensorSpec::new("token", Dtype::I64, [Dim::from(1), Dim::from(1)]),
            TensorSpec::new("h0", Dtype::F32, state()),
        ],
        vec![
            TensorSpec::new(
                "logits",
                Dtype::F32,
                [Dim::from(1), Dim::from(1), Dim::from(vocab)],
            ),
            TensorSpec::new("h_n", Dtype::F32, state()),
        ],
    )
}

/// Builds the step graph; see the [module docs](self).
pub fn step_graph(weights: &StepWeights, name: &str) -> GraphBuilder {
    let (inputs, outputs) = step_specs(weights.vocab, weights.layers.len(), weights.d_hidden);
    let mut g = GraphBuilder::new(name);
    g.producer("continuo-train");
    let token = g.input("token", Dtype::I64, &inputs[0].shape);
    let h0 = g.input("h0", Dtype::F32, &inputs[1].shape);
    let table = g.initializer_f32(
        "embedding",
        &[weights.vocab, weights.d_embed],
        &weights.embedding,
    );
    let mut x = g.gather(&table, &token, 0); // [T = 1, B = 1, E]
    let mut states = Vec::new();
    for (index, layer) in weights.layers.iter().enumerate() {
        let i = index as i64;
        let h0_layer = if weights.layers.len() == 1 {
            h0.clone()
        } else {
            g.slice(&h0, &[i], &[i + 1], &[0]) // [1, 1, H]
        };
        let (y, h_n) = g.gru(&x, Some(&h0_layer), layer); // y [T, 1, B, H]
        x = g.squeeze(&y, &[1]); // [T, B, H]
        states.push(h_n);
    }
    let last = states.last().expect("at least one layer").clone();
    let h_n = if states.len() == 1 {
        last.clone()
    } else {
        let refs: Vec<&str> = states.iter().map(String::as_str).collect();
        g.concat(&refs, 0)
    };
    let logits = g.dense(
        &last,
        weights.d_hidden,
        weights.vocab,
        &weights.out_w,
        &weights.out_b,
    );
    g.output(&logits, "logits", Dtype::F32, &outputs[0].shape);
    g.output(&h_n, "h_n", Dtype::F32, &outputs[1].shape);
    g
}

/// How closely an exported model matched burn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verification {
    /// Backend that ran the ONNX model.
    pub backend: Backend,
    /// Token steps compared.
    pub steps: usize,
    /// Largest |burn − ONNX| over all logits.
    pub max_logit_error: f32,
    /// Largest |burn − ONNX| over all states.
    pub max_state_error: f32,
}

impl Verification {
    /// The larger of the two errors.
    pub fn max_error(&self) -> f32 {
        self.max_logit_error.max(self.max_state_error)
    }

    /// Whether both errors are within `tolerance` (NaN fails).
    pub fn passes(&self, tolerance: f32) -> bool {
        self.max_error() <= tolerance
    }
}

/// A session for ONNX bytes on one backend (ONNX Runtime is initialised from `search`).
///
/// # Errors
/// If the bytes do not decode, the runtime cannot be loaded, or the backend refuses the graph.
pub fn session_for_bytes(
    bytes: &[u8],
    backend: Backend,
    search: &RuntimeSearch,
) -> Result<Session> {
    let label = Path::new("<exported model>");
    let info = inspect(label, bytes)?;
    let runtime = match backend {
        Backend::OnnxRuntime => Some(onnx_runtime(search).map_err(|e| anyhow::anyhow!("{e}"))?),
        Backend::Tract => None,
    };
    Ok(Session::new(label, bytes, &info, backend, runtime)?)
}

/// Runs `steps` random tokens from a random state through `session` and through `model`
/// one token at a time; see the [module docs](self).
///
/// # Errors
/// If the session fails to run or returns the wrong shapes.
pub fn verify(
    session: &mut Session,
    model: &ContinuationModel,
    steps: usize,
    seed: u64,
) -> Result<Verification> {
    let device = cpu_device();
    let (layers, hidden) = (model.layer_count(), model.hidden_size());
    let vocab = model.embedding.weight.val().dims()[0];
    let mut rng = SplitMix::new(seed, 0x5eed);
    let h_start: Vec<f32> = (0..layers * hidden)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    let state_shape = [layers, 1, hidden];
    let mut h_onnx = h_start.clone();
    let mut h_burn: Tensor<3> = Tensor::from_data(TensorData::new(h_start, state_shape), &device);
    let mut result = Verification {
        backend: session.backend(),
        steps,
        max_logit_error: 0.0,
        max_state_error: 0.0,
    };
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) })
    };
    for _ in 0..steps {
        let token = rng.below(vocab) as i64;
        let out = session.run(&[
            TensorView::i64(&[1, 1], &[token]),
            TensorView::f32(&state_shape, &h_onnx),
        ])?;
        let logits_onnx = out[0].as_f32().context("logits are not f32")?;
        let state_onnx = out[1].as_f32().context("h_n is not f32")?;
        anyhow::ensure!(
            out[0].shape == [1, 1, vocab] && out[1].shape == state_shape,
            "exported model returned shapes {:?} and {:?}",
            out[0].shape,
            out[1].shape
        );
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![token], [1, 1]), &device);
        let (logits_burn, state_burn) = model.forward(tokens, Some(h_burn));
        let logits_burn = values(logits_burn);
        let state_values = values(state_burn.clone());
        let logit_error = max_diff(logits_onnx, &logits_burn);
        let state_error = max_diff(state_onnx, &state_values);
        result.max_logit_error = nan_max(result.max_logit_error, logit_error);
        result.max_state_error = nan_max(result.max_state_error, state_error);
        h_onnx = state_onnx.to_vec();
        h_burn = state_burn;
    }
    Ok(result)
}

fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Builds the ONNX bytes for a model and verifies them on each backend in `backends`.
///
/// # Errors
/// If a backend cannot run the model, or any verification is above [`TOLERANCE`] (the error
/// says by how much).
pub fn export_verified(
    model: &ContinuationModel,
    name: &str,
    backends: &[Backend],
    search: &RuntimeSearch,
) -> Result<(Vec<u8>, u64, Vec<Verification>)> {
    let graph = step_graph(&extract(model), name);
    let bytes = graph.to_bytes();
    let mut verifications = Vec::new();
    for &backend in backends {
        let mut session = session_for_bytes(&bytes, backend, search)
            .with_context(|| format!("creating a {backend} session for the exported model"))?;
        let verification = verify(&mut session, model, 32, 7)?;
        anyhow::ensure!(
            verification.passes(TOLERANCE),
            "export verification failed on {backend}: max |burn − ONNX| = {} (logits {}, \
             state {}), tolerance {TOLERANCE}",
            verification.max_error(),
            verification.max_logit_error,
            verification.max_state_error
        );
        verifications.push(verification);
    }
    Ok((bytes, graph.parameter_count(), verifications))
}
