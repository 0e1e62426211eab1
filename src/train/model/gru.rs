//! The recurrent continuation model: token embedding → stacked GRU → linear logits over the
//! vocabulary.
//!
//! The GRU is written here rather than taken from `burn::nn::Gru` for two reasons:
//! - **Speed.** burn's GRU does six small matmuls per time step and writes each step into a
//!   pre-allocated tensor with `slice_assign`; this one projects the whole input sequence with
//!   one matmul, does one `[B, H] × [H, 3H]` matmul per step and stacks the states once, which
//!   makes the autodiff graph about three times smaller.
//! - **One layout with the export.** The parameters are stored exactly as ONNX's `GRU`
//!   operator wants them (gate blocks **z, r, h**, "reset after" = `linear_before_reset = 1`),
//!   so [`crate::train::export`] copies them without reordering, and the gate order has one home.
//!
//! The cell (per layer, per step; `x` the input, `h` the state, `⊙` element-wise):
//! ```text
//! z = σ(x·Wz + bWz + h·Rz + bRz)
//! r = σ(x·Wr + bWr + h·Rr + bRr)
//! n = tanh(x·Wh + bWh + r ⊙ (h·Rh + bRh))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Int, Tensor};

use super::ContinuationModelConfig;

impl GruModel {
    /// A freshly initialised model on `device` (seed the device first for reproducible
    /// weights).
    pub(super) fn new(config: &ContinuationModelConfig, device: &Device) -> Self {
        let layers = (0..config.layers.max(1))
            .map(|layer| {
                let d_input = if layer == 0 {
                    config.d_embed
                } else {
                    config.d_hidden
                };
                GruLayer::new(d_input, config.d_hidden, device)
            })
            .collect();
        GruModel {
            embedding: EmbeddingConfig::new(config.vocab_size, config.d_embed).init(device),
            layers,
            output: LinearConfig::new(config.d_hidden, config.vocab_size).init(device),
        }
    }
}

/// One GRU layer with ONNX's parameter layout (see the [module docs](self)).
#[derive(Module, Debug)]
pub struct GruLayer {
    /// Input weights `[I, 3H]`: column blocks z | r | h.
    pub w_input: Param<Tensor<2>>,
    /// Recurrent weights `[H, 3H]`: column blocks z | r | h.
    pub w_hidden: Param<Tensor<2>>,
    /// Input biases `[3H]`: z | r | h.
    pub b_input: Param<Tensor<1>>,
    /// Recurrent biases `[3H]`: z | r | h.
    pub b_hidden: Param<Tensor<1>>,
    /// Hidden size `H`.
    pub d_hidden: usize,
}

impl GruLayer {
    /// Uniform(−1/√H, 1/√H) initialisation, the usual choice for GRUs.
    fn new(d_input: usize, d_hidden: usize, device: &Device) -> Self {
        let bound = 1.0 / (d_hidden as f64).sqrt();
        let uniform = |shape: [usize; 2]| {
            Param::from_tensor(Tensor::random(
                shape,
                Distribution::Uniform(-bound, bound),
                device,
            ))
        };
        let uniform1 = |n: usize| {
            Param::from_tensor(Tensor::random(
                [n],
                Distribution::Uniform(-bound, bound),
                device,
            ))
        };
        Self {
            w_input: uniform([d_input, 3 * d_hidden]),
            w_hidden: uniform([d_hidden, 3 * d_hidden]),
            b_input: uniform1(3 * d_hidden),
            b_hidden: uniform1(3 * d_hidden),
            d_hidden,
        }
    }

    /// Runs the layer over a sequence.
    ///
    /// # Shapes
    /// - `input`: `[B, T, I]`
    /// - `state`: `[B, H]` (the state before the first step)
    /// - returns (`[B, T, H]` every step's state, `[B, H]` the last state)
    pub fn forward(&self, input: Tensor<3>, state: Tensor<2>) -> (Tensor<3>, Tensor<2>) {
        let [batch, steps, d_input] = input.dims();
        let h = self.d_hidden;
        // All input projections at once: [B*T, I] × [I, 3H].
        let projected = input
            .reshape([batch * steps, d_input])
            .matmul(self.w_input.val())
            .add(self.b_input.val().unsqueeze())
            .reshape([batch, steps, 3 * h]);
        let w_hidden = self.w_hidden.val();
        let b_hidden = self.b_hidden.val().unsqueeze::<2>();
        let mut state = state;
        let mut outputs = Vec::with_capacity(steps);
        for t in 0..steps {
            let x = projected.clone().narrow(1, t, 1).reshape([batch, 3 * h]);
            let r_h = state.clone().matmul(w_hidden.clone()).add(b_hidden.clone());
            let gates = sigmoid(x.clone().narrow(1, 0, 2 * h) + r_h.clone().narrow(1, 0, 2 * h));
            let z = gates.clone().narrow(1, 0, h);
            let r = gates.narrow(1, h, h);
            let n = (x.narrow(1, 2 * h, h) + r * r_h.narrow(1, 2 * h, h)).tanh();
            // h' = (1 − z) n + z h = n + z (h − n)
            state = n.clone() + z * (state - n);
            outputs.push(state.clone());
        }
        (Tensor::stack(outputs, 1), state)
    }
}

/// Embedding → GRU layers → linear logits. See the [module docs](self).
#[derive(Module, Debug)]
pub struct GruModel {
    /// Token embedding `[V, E]`.
    pub embedding: Embedding,
    /// The GRU stack, input side first.
    pub layers: Vec<GruLayer>,
    /// Logits projection `[H, V]` + bias `[V]`.
    pub output: Linear,
}

impl GruModel {
    /// Number of GRU layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// GRU hidden size.
    pub fn hidden_size(&self) -> usize {
        self.layers[0].d_hidden
    }

    /// A zero state for `batch` sequences: `[L, B, H]`.
    pub fn zero_state(&self, batch: usize, device: &Device) -> Tensor<3> {
        Tensor::zeros([self.layer_count(), batch, self.hidden_size()], device)
    }

    /// Next-token logits for every position of `tokens`.
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]` token ids
    /// - `state`: `[L, B, H]` the state before the first token (`None` = zeros)
    /// - returns (`[B, T, V]` logits, `[L, B, H]` the state after the last token)
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<Tensor<3>>,
    ) -> (Tensor<3>, Tensor<3>) {
        let [batch, _] = tokens.dims();
        let device = tokens.device();
        let state = state.unwrap_or_else(|| self.zero_state(batch, &device));
        let mut x = self.embedding.forward(tokens);
        let mut last_states = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let h0 = state
                .clone()
                .narrow(0, index, 1)
                .reshape([batch, self.hidden_size()]);
            let (y, h_n) = layer.forward(x, h0);
            x = y;
            last_states.push(h_n);
        }
        (self.output.forward(x), Tensor::stack(last_states, 0))
    }
}
