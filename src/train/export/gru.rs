//! The GRU's step graph: `Gather` (embedding) → per layer `Slice` of `h0` → `GRU` (one step,
//! `linear_before_reset = 1`) → `Squeeze` → … → `Concat` of the layer states → `MatMul` +
//! `Add`.

use crate::model::onnx_writer::{GraphBuilder, GruWeights};
use crate::model::Dtype;

use super::{step_specs, transpose, values};
use crate::train::model::GruModel;

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

/// Copies the weights out of a burn model. The GRU gate order is already ONNX's (z, r, h):
/// only the matrices are transposed (burn multiplies `x · W`, ONNX stores `W` as `[3H, I]`).
pub fn extract(model: &GruModel) -> StepWeights {
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

/// Builds the GRU step graph; see the [module docs](self).
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
