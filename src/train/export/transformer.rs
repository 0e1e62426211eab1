//! The Transformer's step graph: one token in, its logits and the slid window out.
//!
//! Per block (shapes for the one token; `W = M + 1` keys, `H` heads of width `dₕ`; the state
//! regions are described in [`crate::train::model::transformer`]):
//! ```text
//! q, k, v = LayerNorm(x) · Wqkv + b                        q pre-scaled by 1/√dₕ at export
//! K       = Concat(keys region   [dₕ, M], k [dₕ, 1])        [dₕ, W], shared by the heads
//! V       = Concat(values region [M, dₕ], v [1, dₕ])        [W, dₕ]
//! F       = Concat(flags region [1, 1, M], 1)               [1, 1, W]
//! scores  = Reshape(q, [H, 1, dₕ]) · K + bias + (F − 1)·10⁹
//! x      += Reshape(softmax(scores) · V, [1, D]) · Wo + bo
//! x      += relu(LayerNorm(x) · W₁ + b₁) · W₂ + b₂
//! h_n     = K, V, F without their oldest slot               the window slides by one
//! ```
//! `bias` is the block's relative bias laid out by key slot: slot `j` is `M − j` tokens back.

use crate::model::onnx_writer::GraphBuilder;
use crate::model::Dtype;
use crate::train::model::transformer::{BIAS_SCALE, LAYER_NORM_EPSILON, MASKED};
use crate::train::model::{TransformerBlock, TransformerModel};

use super::{step_specs, values};

/// `f32` constants of the step graph that are not trained parameters (the new slot's filled
/// flag, and the two numbers that turn flags into the attention mask).
pub const GRAPH_CONSTANTS: usize = 3;

/// A layer norm's scale and bias.
#[derive(Debug, Clone, PartialEq)]
pub struct NormWeights {
    /// Scale `[D]`.
    pub gamma: Vec<f32>,
    /// Bias `[D]`.
    pub beta: Vec<f32>,
}

/// One block's weights, matrices `[in, out]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockWeights {
    /// Norm before attention.
    pub attention_norm: NormWeights,
    /// `[D, D + 2dₕ]`, the query columns already scaled by 1/√dₕ.
    pub qkv_w: Vec<f32>,
    /// `[D + 2dₕ]`, the query part already scaled.
    pub qkv_b: Vec<f32>,
    /// `[D, D]`.
    pub out_w: Vec<f32>,
    /// `[D]`.
    pub out_b: Vec<f32>,
    /// `[H, M + 1]` by distance (its value, not burn's scaled-down storage).
    pub relative_bias: Vec<f32>,
    /// Norm before the feed-forward layer.
    pub feed_forward_norm: NormWeights,
    /// `[D, F]`.
    pub ff_in_w: Vec<f32>,
    /// `[F]`.
    pub ff_in_b: Vec<f32>,
    /// `[F, D]`.
    pub ff_out_w: Vec<f32>,
    /// `[D]`.
    pub ff_out_b: Vec<f32>,
}

/// The trained weights of a [`TransformerModel`] in the step graph's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerWeights {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Width `D`.
    pub d_model: usize,
    /// Feed-forward width `F`.
    pub d_ff: usize,
    /// Heads `H`.
    pub heads: usize,
    /// Window memory `M`.
    pub memory: usize,
    /// Embedding `[V, D]`.
    pub embedding: Vec<f32>,
    /// The blocks, input side first.
    pub blocks: Vec<BlockWeights>,
    /// Norm before the logits.
    pub final_norm: NormWeights,
    /// `[D, V]`.
    pub out_w: Vec<f32>,
    /// `[V]`.
    pub out_b: Vec<f32>,
}

fn norm(n: &burn::nn::LayerNorm) -> NormWeights {
    let gamma = values(n.gamma.val());
    let beta = n
        .beta
        .as_ref()
        .map(|b| values(b.val()))
        .unwrap_or_else(|| vec![0.0; gamma.len()]);
    NormWeights { gamma, beta }
}

fn linear(l: &burn::nn::Linear) -> (Vec<f32>, Vec<f32>) {
    let w = l.weight.val();
    let out = w.dims()[1];
    let b = l
        .bias
        .as_ref()
        .map(|b| values(b.val()))
        .unwrap_or_else(|| vec![0.0; out]);
    (values(w), b)
}

impl TransformerWeights {
    /// Copies the weights out of a burn model, folding the attention scale into the query
    /// projection.
    pub fn extract(model: &TransformerModel) -> Self {
        let d = model.d_model;
        let head_width = d / model.heads;
        let scale = 1.0 / (head_width as f32).sqrt();
        let block = |b: &TransformerBlock| {
            let (mut qkv_w, mut qkv_b) = linear(&b.qkv);
            for row in qkv_w.chunks_mut(d + 2 * head_width) {
                row[..d].iter_mut().for_each(|w| *w *= scale);
            }
            qkv_b[..d].iter_mut().for_each(|b| *b *= scale);
            let (out_w, out_b) = linear(&b.attention_out);
            let (ff_in_w, ff_in_b) = linear(&b.feed_forward_in);
            let (ff_out_w, ff_out_b) = linear(&b.feed_forward_out);
            BlockWeights {
                attention_norm: norm(&b.attention_norm),
                qkv_w,
                qkv_b,
                out_w,
                out_b,
                relative_bias: values(b.relative_bias.val().mul_scalar(BIAS_SCALE)),
                feed_forward_norm: norm(&b.feed_forward_norm),
                ff_in_w,
                ff_in_b,
                ff_out_w,
                ff_out_b,
            }
        };
        let (out_w, out_b) = linear(&model.output);
        let embedding = model.embedding.weight.val();
        let d_ff = model
            .blocks
            .first()
            .map_or(0, |b| b.feed_forward_in.weight.val().dims()[1]);
        TransformerWeights {
            vocab: embedding.dims()[0],
            d_model: d,
            d_ff,
            heads: model.heads,
            memory: model.memory,
            embedding: values(embedding),
            blocks: model.blocks.iter().map(block).collect(),
            final_norm: norm(&model.final_norm),
            out_w,
            out_b,
        }
    }

    /// The same weights with every relative bias read from the wrong end (distance `k` given
    /// the bias of `M − k`): the classic relative-position export bug, for the
    /// negative-control test.
    pub fn reverse_distances(&self) -> Self {
        let mut reversed = self.clone();
        for block in &mut reversed.blocks {
            for head in block.relative_bias.chunks_mut(self.memory + 1) {
                head.reverse();
            }
        }
        reversed
    }

    /// Floats of state per layer.
    pub fn state_width(&self) -> usize {
        self.memory * (2 * (self.d_model / self.heads) + 1)
    }
}

fn layer_norm(g: &mut GraphBuilder, x: &str, norm: &NormWeights) -> String {
    g.layer_norm(x, &norm.gamma, &norm.beta, LAYER_NORM_EPSILON as f32)
}

/// Builds the Transformer step graph; see the [module docs](self).
pub fn step_graph(weights: &TransformerWeights, name: &str) -> GraphBuilder {
    let (d, m, heads) = (weights.d_model, weights.memory, weights.heads);
    let (di, mi, hi) = (d as i64, m as i64, heads as i64);
    let head_width = (d / heads) as i64;
    let window = mi + 1;
    let layers = weights.blocks.len();
    let (inputs, outputs) = step_specs(weights.vocab, layers, weights.state_width());
    let mut g = GraphBuilder::new(name);
    g.producer("continuo-train");
    let token = g.input("token", Dtype::I64, &inputs[0].shape);
    let h0 = g.input("h0", Dtype::F32, &inputs[1].shape);
    let table = g.initializer_f32("embedding", &[weights.vocab, d], &weights.embedding);
    let filled_now = g.initializer_f32("filled", &[1, 1, 1], &[1.0]);
    let minus_one = g.initializer_f32("minus_one", &[1], &[-1.0]);
    let mask_scale = g.initializer_f32("mask_scale", &[1], &[-MASKED]);

    let embedded = g.gather(&table, &token, 0); // [1, 1, D]
    let mut x = g.reshape(&embedded, &[1, di]);
    let mut new_state = Vec::with_capacity(3 * layers);
    for (index, block) in weights.blocks.iter().enumerate() {
        let i = index as i64;
        let region = |g: &mut GraphBuilder, start: i64, len: i64, shape: &[i64]| {
            let r = g.slice(&h0, &[i, start], &[i + 1, start + len], &[0, 2]);
            g.reshape(&r, shape)
        };
        let kv_size = head_width * mi;
        let key_window = region(&mut g, 0, kv_size, &[head_width, mi]);
        let value_window = region(&mut g, kv_size, kv_size, &[mi, head_width]);
        let filled_window = region(&mut g, 2 * kv_size, mi, &[1, 1, mi]);

        let normed = layer_norm(&mut g, &x, &block.attention_norm);
        let qkv_width = d + 2 * (d / heads);
        let qkv = g.dense(&normed, d, qkv_width, &block.qkv_w, &block.qkv_b); // [1, D + 2dₕ]
        let query = g.slice(&qkv, &[0], &[di], &[1]);
        let query = g.reshape(&query, &[hi, 1, head_width]);
        let key = g.slice(&qkv, &[di], &[di + head_width], &[1]);
        let key = g.reshape(&key, &[head_width, 1]);
        let value = g.slice(&qkv, &[di + head_width], &[di + 2 * head_width], &[1]);
        let keys = g.concat(&[&key_window, &key], 1); // [dₕ, W]
        let values_ = g.concat(&[&value_window, &value], 0); // [W, dₕ]
        let filled = g.concat(&[&filled_window, &filled_now], 2); // [1, 1, W]
        let empty = g.add(&filled, &minus_one);
        let mask = g.mul(&empty, &mask_scale);
        let bias_name = g.fresh("relative_bias");
        let bias_by_slot: Vec<f32> = block
            .relative_bias
            .chunks(m + 1)
            .flat_map(|head| head.iter().rev().copied())
            .collect();
        let bias = g.initializer_f32(&bias_name, &[heads, 1, m + 1], &bias_by_slot);

        let scores = g.matmul(&query, &keys); // [H, 1, W]: every head, the shared keys
        let scores = g.add(&scores, &bias);
        let scores = g.add(&scores, &mask);
        let attention = g.softmax(&scores, -1);
        let attended = g.matmul(&attention, &values_); // [H, 1, dₕ]
        let attended = g.reshape(&attended, &[1, di]);
        let attended = g.dense(&attended, d, d, &block.out_w, &block.out_b);
        x = g.add(&x, &attended);

        let normed = layer_norm(&mut g, &x, &block.feed_forward_norm);
        let hidden = g.dense(&normed, d, weights.d_ff, &block.ff_in_w, &block.ff_in_b);
        let hidden = g.relu(&hidden);
        let out = g.dense(&hidden, weights.d_ff, d, &block.ff_out_w, &block.ff_out_b);
        x = g.add(&x, &out);

        // The window slides by one: drop the oldest slot of each region.
        for (all, axis, len) in [
            (&keys, 1, kv_size),
            (&values_, 0, kv_size),
            (&filled, 2, mi),
        ] {
            let slid = g.slice(all, &[1], &[window], &[axis]);
            new_state.push(g.reshape(&slid, &[1, len]));
        }
    }
    let refs: Vec<&str> = new_state.iter().map(String::as_str).collect();
    let h_n = g.concat(&refs, 1); // [1, L·S]
    let h_n = g.reshape(&h_n, &[layers as i64, 1, weights.state_width() as i64]);
    let normed = layer_norm(&mut g, &x, &weights.final_norm);
    let logits = g.dense(&normed, d, weights.vocab, &weights.out_w, &weights.out_b);
    let logits = g.reshape(&logits, &[1, 1, weights.vocab as i64]);
    g.output(&logits, "logits", Dtype::F32, &outputs[0].shape);
    g.output(&h_n, "h_n", Dtype::F32, &outputs[1].shape);
    g
}
