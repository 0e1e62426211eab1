//! burn weights → a one-token-step ONNX model (via `crate::model::onnx_writer`), verified
//! through `crate::model`'s own runtime against burn's forward pass before anything is
//! written as a model.
//!
//! The step model (what Continuo Phrase calls once per generated token), the same for both
//! architectures ([`gru`], [`transformer`]); only the state's width `S` differs (see
//! [`crate::train::model`]):
//!
//! | name | dtype | shape | meaning |
//! | --- | --- | --- | --- |
//! | `token` (in) | i64 | `[1, 1]` | the latest token id |
//! | `h0` (in) | f32 | `[L, 1, S]` | the state after the previous token (zeros before `BOS`) |
//! | `logits` (out) | f32 | `[1, 1, V]` | unnormalised scores of the next token |
//! | `h_n` (out) | f32 | `[L, 1, S]` | the state to feed back as `h0` |
//!
//! **Verification** ([`verify`]) runs the ONNX bytes on a backend and burn's forward pass one
//! token at a time over random tokens from a random initial state, carrying the state through
//! each side's own outputs, and reports the largest difference in logits and states. Export
//! refuses to write a model above [`TOLERANCE`]; [`gru::swap_update_reset`] and
//! [`transformer::TransformerWeights::reverse_distances`] make classic wrong exports for the
//! negative-control tests.

pub mod gru;
pub mod transformer;

use std::path::Path;

use crate::model::backend::{onnx_runtime, Backend, RuntimeSearch, Session};
use crate::model::onnx_info::inspect;
use crate::model::onnx_writer::GraphBuilder;
use crate::model::{Dim, Dtype, TensorSpec, TensorView};
use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};

use super::data::SplitMix;
use super::model::ContinuationModel;
use super::training::cpu_device;

pub use gru::{extract, swap_update_reset, StepWeights};

/// Largest accepted difference between burn and the exported model (logits and states).
pub const TOLERANCE: f32 = 1e-4;

pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .expect("float tensors hold f32")
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub(super) fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// Input and output specs of the step model (the manifest's `inputs`/`outputs`) for `layers`
/// layers of `state_width` floats of state each.
pub fn step_specs(
    vocab: usize,
    layers: usize,
    state_width: usize,
) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let state = || [Dim::from(layers), Dim::from(1), Dim::from(state_width)];
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

/// The step graph of a trained model of either architecture.
pub fn step_graph(model: &ContinuationModel, name: &str) -> GraphBuilder {
    match model {
        ContinuationModel::Gru(m) => gru::step_graph(&extract(m), name),
        ContinuationModel::Transformer(m) => {
            transformer::step_graph(&transformer::TransformerWeights::extract(m), name)
        }
    }
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
    let vocab = model.vocab_size();
    let mut rng = SplitMix::new(seed, 0x5eed);
    let state_shape = model.state_shape(1);
    let h_start = random_state(model, &mut rng);
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

/// A random state for [`verify`], uniform in ±0.5. A Transformer's window slots are all marked
/// filled, so that the first steps already attend over a full window of (random) keys and
/// values.
fn random_state(model: &ContinuationModel, rng: &mut SplitMix) -> Vec<f32> {
    let mut state: Vec<f32> = (0..model.state_shape(1).iter().product())
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    if let ContinuationModel::Transformer(m) = model {
        // Each layer's state ends with its M flags.
        for layer in state.chunks_mut(m.state_width()) {
            let flags = layer.len() - m.memory;
            layer[flags..].fill(1.0);
        }
    }
    state
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
    let graph = step_graph(model, name);
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
