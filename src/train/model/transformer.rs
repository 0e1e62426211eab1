//! The attention continuation model: a small decoder-only Transformer (pre-norm blocks,
//! causal multi-query self-attention, ReLU feed-forward) whose attention sees a **sliding
//! window**: each token attends to itself and the `M` tokens before it.
//!
//! Why a window: Phrase runs the model one token per call with a fixed-size state (the ONNX
//! step contract, `h0 → h_n`). The state is the window's keys and values, so a step costs the
//! same at the first token and the thousandth, and a window needs no absolute positions.
//! Positions are **relative**: a learned bias per head and distance `0..=M` is added to the
//! attention scores (as in T5, without buckets), starting from ALiBi's per-head slopes.
//!
//! The heads share one key and one value projection (multi-query attention, Shazeer 2019):
//! the state, which Phrase copies in and out of the runtime at every token, is then `H` times
//! smaller. (With a key and value per head, copying it was most of a step: 4,400 against
//! 7,200 tokens/s on ONNX Runtime.)
//!
//! State per layer and sequence, three regions of the last `M` tokens, oldest first, laid out
//! as the step graph multiplies them (no transposes, one copy per region and step):
//! keys `[dₕ, M]`, values `[M, dₕ]`, filled flags `[M]` (1 = a token is there). A zero
//! state is an empty window (nothing filled, so nothing attended): the state at `BOS`, like
//! the GRU's zero vector. Training carries the state between windows exactly as
//! the GRU's is carried (Transformer-XL's recurrence, with keys and values cached instead of
//! layer inputs), so what is trained is what the step model computes.
//!
//! A block (`x` the residual stream `[T, D]`):
//! ```text
//! q, k, v = LayerNorm₁(x) · Wqkv + b
//! a = softmax(q·kᵀ/√dₕ + bias[head, distance] + mask) · v      (per head, over window + chunk)
//! x = x + a · Wo + bo
//! x = x + relu(LayerNorm₂(x) · W₁ + b₁) · W₂ + b₂
//! ```

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::ContinuationModelConfig;

/// Added to the score of a key a query must not see. Large enough that its softmax weight is
/// exactly 0 in f32, small enough to stay finite when added to another mask.
pub const MASKED: f32 = -1e9;

/// The layer norms' epsilon (burn's default, written into the exported graph too).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// The relative bias is stored divided by this. Adam moves every parameter by about the
/// learning rate per step whatever its gradient's size, so a bias stored at 1/8 of its value
/// learns 8× faster than the other weights: it must reach several units to pin a head to "the
/// previous token", which at the plain rate took thousands of steps (measured: the first
/// unscaled, zero-initialised run stayed near the 4-gram's loss for 1,200 steps).
pub const BIAS_SCALE: f64 = 8.0;

/// Longest run of tokens attended at once. Longer inputs (held-out evaluation of whole
/// pieces) run chunk by chunk with the state carried, which gives the same result with memory
/// bounded by the chunk.
const CHUNK: usize = 64;

/// One pre-norm Transformer block; see the [module docs](self).
#[derive(Module, Debug)]
pub struct TransformerBlock {
    /// Norm before attention.
    pub attention_norm: LayerNorm,
    /// Query, key and value projections `[D, D + 2dₕ]`: column blocks q (all heads, in order)
    /// | k | v (one head's width, shared by all heads).
    pub qkv: Linear,
    /// Attention output projection `[D, D]`.
    pub attention_out: Linear,
    /// Relative-position bias `[heads, M + 1]`, indexed by distance (0 = the token itself).
    pub relative_bias: Param<Tensor<2>>,
    /// Norm before the feed-forward layer.
    pub feed_forward_norm: LayerNorm,
    /// Feed-forward expansion `[D, F]`.
    pub feed_forward_in: Linear,
    /// Feed-forward contraction `[F, D]`.
    pub feed_forward_out: Linear,
}

/// Embedding → blocks → norm → linear logits. See the [module docs](self).
#[derive(Module, Debug)]
pub struct TransformerModel {
    /// Token embedding `[V, D]`.
    pub embedding: Embedding,
    /// The blocks, input side first.
    pub blocks: Vec<TransformerBlock>,
    /// Norm before the logits.
    pub final_norm: LayerNorm,
    /// Logits projection `[D, V]` + bias `[V]`.
    pub output: Linear,
    /// Residual width `D`.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Earlier tokens attended (`M`).
    pub memory: usize,
}

impl TransformerModel {
    pub(super) fn new(config: &ContinuationModelConfig, device: &Device) -> Self {
        let d = config.d_hidden;
        assert!(
            config.heads >= 1 && d.is_multiple_of(config.heads),
            "{} heads do not divide the width {d}",
            config.heads
        );
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device)
        };
        let blocks = (0..config.layers)
            .map(|_| TransformerBlock {
                attention_norm: norm(),
                qkv: LinearConfig::new(d, d + 2 * (d / config.heads)).init(device),
                attention_out: LinearConfig::new(d, d).init(device),
                relative_bias: Param::from_tensor(alibi(config.heads, config.memory, device)),
                feed_forward_norm: norm(),
                feed_forward_in: LinearConfig::new(d, config.d_ff).init(device),
                feed_forward_out: LinearConfig::new(config.d_ff, d).init(device),
            })
            .collect();
        TransformerModel {
            embedding: EmbeddingConfig::new(config.vocab_size, d).init(device),
            blocks,
            final_norm: norm(),
            output: LinearConfig::new(d, config.vocab_size).init(device),
            d_model: d,
            heads: config.heads,
            memory: config.memory,
        }
    }

    /// Floats of state per layer and sequence: `M · (2dₕ + 1)`.
    pub fn state_width(&self) -> usize {
        self.memory * (2 * (self.d_model / self.heads) + 1)
    }

    /// Next-token logits for every position of `tokens`; see
    /// [`super::ContinuationModel::forward`].
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<Tensor<3>>,
    ) -> (Tensor<3>, Tensor<3>) {
        let [batch, steps] = tokens.dims();
        let device = tokens.device();
        let mut state = state.unwrap_or_else(|| {
            Tensor::zeros([self.blocks.len(), batch, self.state_width()], &device)
        });
        let mut logits = Vec::with_capacity(steps.div_ceil(CHUNK));
        for start in (0..steps).step_by(CHUNK) {
            let len = CHUNK.min(steps - start);
            let (chunk_logits, next) =
                self.forward_chunk(tokens.clone().narrow(1, start, len), state);
            logits.push(chunk_logits);
            state = next;
        }
        let logits = if logits.is_empty() {
            Tensor::zeros([batch, 0, self.output.weight.val().dims()[1]], &device)
        } else {
            Tensor::cat(logits, 1)
        };
        (logits, state)
    }

    fn forward_chunk(&self, tokens: Tensor<2, Int>, state: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [batch, steps] = tokens.dims();
        let device = tokens.device();
        let (d, m, heads) = (self.d_model, self.memory, self.heads);
        let head_width = d / heads;
        let keys = m + steps;
        let (band, distance) = window_layout(steps, m, &device);
        // [B, T, D] → [B, H, T, dₕ]
        let split_heads =
            |t: Tensor<3>| t.reshape([batch, steps, heads, head_width]).swap_dims(1, 2);
        let filled_rows = Tensor::ones([batch, 1, 1, steps], &device);

        let mut x = self.embedding.forward(tokens); // [B, T, D]
        let mut new_state = Vec::with_capacity(self.blocks.len());
        for (layer, block) in self.blocks.iter().enumerate() {
            let layer_state = state
                .clone()
                .narrow(0, layer, 1)
                .reshape([batch, self.state_width()]);
            let region = |start: usize, len: usize| layer_state.clone().narrow(1, start, len);
            let qkv = block.qkv.forward(block.attention_norm.forward(x.clone())); // [B, T, D + 2dₕ]
            let query = split_heads(qkv.clone().narrow(2, 0, d));
            let key = qkv
                .clone()
                .narrow(2, d, head_width)
                .swap_dims(1, 2)
                .reshape([batch, 1, head_width, steps]);
            let value = qkv
                .narrow(2, d + head_width, head_width)
                .reshape([batch, 1, steps, head_width]);
            let kv_size = head_width * m;
            let key = Tensor::cat(
                vec![region(0, kv_size).reshape([batch, 1, head_width, m]), key],
                3,
            ); // [B, 1, dₕ, M + T], shared by the heads
            let value = Tensor::cat(
                vec![
                    region(kv_size, kv_size).reshape([batch, 1, m, head_width]),
                    value,
                ],
                2,
            ); // [B, 1, M + T, dₕ]
            let filled = Tensor::cat(
                vec![
                    region(2 * kv_size, m).reshape([batch, 1, 1, m]),
                    filled_rows.clone(),
                ],
                3,
            ); // [B, 1, 1, M + T]

            let relative = block
                .relative_bias
                .val()
                .mul_scalar(BIAS_SCALE)
                .select(1, distance.clone())
                .reshape([1, heads, steps, keys]);
            let empty = filled.clone().sub_scalar(1.0).mul_scalar(-MASKED);
            let query = query.mul_scalar(1.0 / (head_width as f64).sqrt());
            let scores = query.matmul(key.clone()) + relative + band.clone() + empty;
            let attended = softmax(scores, 3)
                .matmul(value.clone())
                .swap_dims(1, 2)
                .reshape([batch, steps, d]);
            x = x.clone() + block.attention_out.forward(attended);
            let hidden = relu(
                block
                    .feed_forward_in
                    .forward(block.feed_forward_norm.forward(x.clone())),
            );
            x = x.clone() + block.feed_forward_out.forward(hidden);

            // The window slides: keep the last M keys, values and flags.
            new_state.push(Tensor::cat(
                vec![
                    key.narrow(3, steps, m).reshape([batch, kv_size]),
                    value.narrow(2, steps, m).reshape([batch, kv_size]),
                    filled.narrow(3, steps, m).reshape([batch, m]),
                ],
                1,
            ));
        }
        let logits = self.output.forward(self.final_norm.forward(x));
        (logits, Tensor::stack(new_state, 0))
    }
}

/// ALiBi's biases (Press et al. 2022) as the starting point: head `h` of `H` penalises distance
/// by `2^(−8(h+1)/H)` per token, so from the first step some heads look at the last few tokens
/// and others further back. Stored divided by [`BIAS_SCALE`].
fn alibi(heads: usize, memory: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = (0..heads)
        .flat_map(|h| {
            let slope = 2f64.powf(-8.0 * (h + 1) as f64 / heads as f64);
            (0..=memory).map(move |distance| (-slope * distance as f64 / BIAS_SCALE) as f32)
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [heads, memory + 1]), device)
}

/// Which keys each query of a chunk may see, and at what distance.
///
/// Keys are the `M` window rows followed by the chunk's `T` tokens; query `t` sits at key
/// index `M + t` and sees key `j` when `0 ≤ M + t − j ≤ M`. Returns the band as an additive
/// mask `[1, 1, T, M + T]` (0 or [`MASKED`]) and the distance of every (query, key) pair,
/// flattened row-major, as indices into the relative bias (0 outside the band, where the mask
/// hides it).
fn window_layout(steps: usize, memory: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let keys = memory + steps;
    let mut band = Vec::with_capacity(steps * keys);
    let mut distance = Vec::with_capacity(steps * keys);
    for t in 0..steps {
        for j in 0..keys {
            let visible = j <= memory + t && memory + t - j <= memory;
            band.push(if visible { 0.0 } else { MASKED });
            distance.push(if visible { (memory + t - j) as i64 } else { 0 });
        }
    }
    (
        Tensor::from_data(TensorData::new(band, [1, 1, steps, keys]), device),
        Tensor::from_data(TensorData::new(distance, [steps * keys]), device),
    )
}
