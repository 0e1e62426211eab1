//! The continuation models Continuo Phrase runs, one token per call: a recurrent one
//! ([`gru`]) and an attention one ([`transformer`]). Both map `(tokens, state)` to
//! `(next-token logits, state)`, so training (truncated back-propagation with the state carried
//! between windows), evaluation and the one-token ONNX step contract are the same for both;
//! only what the state holds differs:
//!
//! | architecture | state `[L, B, S]` per layer |
//! | --- | --- |
//! | GRU | the hidden vector (`S` = hidden size) |
//! | Transformer | keys, values and a filled flag of the last `M` tokens (`S` = `M·(2dₕ + 1)`, `dₕ` the head width) |

pub mod gru;
pub mod transformer;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

pub use gru::{GruLayer, GruModel};
pub use transformer::{TransformerBlock, TransformerModel};

/// Which network a continuation model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Embedding → GRU stack → logits.
    Gru,
    /// Decoder-only Transformer: causal self-attention over a sliding window of the last
    /// `memory` tokens with learned relative-position biases.
    Transformer,
}

impl Architecture {
    /// The name used in reports and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Architecture::Gru => "GRU",
            Architecture::Transformer => "Transformer",
        }
    }
}

/// Sizes of a [`ContinuationModel`]. Saved as part of the training config so a checkpoint can
/// rebuild its model.
#[derive(Config, Debug, PartialEq)]
pub struct ContinuationModelConfig {
    /// Number of token ids (the tokenizer's vocabulary, 316 for `continuo-event-v1`).
    pub vocab_size: usize,
    /// Which network.
    #[config(default = "Architecture::Gru")]
    pub arch: Architecture,
    /// Width of the GRU's token embedding (the Transformer embeds at its own width).
    #[config(default = 64)]
    pub d_embed: usize,
    /// Model width: the GRU's hidden size, or the Transformer's residual stream.
    #[config(default = 256)]
    pub d_hidden: usize,
    /// Number of stacked GRU layers or Transformer blocks.
    #[config(default = 1)]
    pub layers: usize,
    /// Transformer: attention heads (must divide `d_hidden`).
    #[config(default = 4)]
    pub heads: usize,
    /// Transformer: feed-forward width.
    #[config(default = 384)]
    pub d_ff: usize,
    /// Transformer: earlier tokens each token attends to (the window is `memory + 1`).
    #[config(default = 127)]
    pub memory: usize,
}

impl ContinuationModelConfig {
    /// A freshly initialised model on `device` (seed the device first for reproducible
    /// weights).
    ///
    /// # Panics
    /// If the sizes cannot make a model (no layers, heads not dividing the width); the
    /// command line checks them first.
    pub fn init(&self, device: &Device) -> ContinuationModel {
        assert!(
            self.layers >= 1,
            "a continuation model needs at least one layer"
        );
        match self.arch {
            Architecture::Gru => ContinuationModel::Gru(GruModel::new(self, device)),
            Architecture::Transformer => {
                ContinuationModel::Transformer(TransformerModel::new(self, device))
            }
        }
    }

    /// Floats of state per layer and sequence (`S` in the [module docs](self)).
    pub fn state_width(&self) -> usize {
        match self.arch {
            Architecture::Gru => self.d_hidden,
            Architecture::Transformer => {
                self.memory * (2 * (self.d_hidden / self.heads.max(1)) + 1)
            }
        }
    }

    /// The state's shape for `batch` sequences: `[L, B, S]`.
    pub fn state_shape(&self, batch: usize) -> [usize; 3] {
        [self.layers, batch, self.state_width()]
    }

    /// Number of trained parameters.
    pub fn parameter_count(&self) -> usize {
        let (v, d) = (self.vocab_size, self.d_hidden);
        let output = d * v + v;
        match self.arch {
            Architecture::Gru => {
                let gru = |i: usize, h: usize| 3 * h * i + 3 * h * h + 6 * h;
                v * self.d_embed + gru(self.d_embed, d) + (self.layers - 1) * gru(d, d) + output
            }
            Architecture::Transformer => {
                let qkv = d + 2 * (d / self.heads.max(1));
                let norm = 2 * d;
                let block = 2 * norm
                    + d * qkv
                    + qkv
                    + d * d
                    + d
                    + self.heads * (self.memory + 1)
                    + 2 * d * self.d_ff
                    + self.d_ff
                    + d;
                v * d + self.layers * block + norm + output
            }
        }
    }
}

/// A continuation model of either architecture; see the [module docs](self).
#[derive(Module, Debug)]
pub enum ContinuationModel {
    /// The recurrent model.
    Gru(GruModel),
    /// The attention model.
    Transformer(TransformerModel),
}

impl ContinuationModel {
    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        let table = match self {
            ContinuationModel::Gru(m) => m.embedding.weight.val(),
            ContinuationModel::Transformer(m) => m.embedding.weight.val(),
        };
        table.dims()[0]
    }

    /// The state's shape for `batch` sequences: `[L, B, S]`.
    pub fn state_shape(&self, batch: usize) -> [usize; 3] {
        match self {
            ContinuationModel::Gru(m) => [m.layer_count(), batch, m.hidden_size()],
            ContinuationModel::Transformer(m) => [m.blocks.len(), batch, m.state_width()],
        }
    }

    /// Next-token logits for every position of `tokens`.
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]` token ids
    /// - `state`: `[L, B, S]` the state before the first token (`None` = zeros, the state at
    ///   `BOS`)
    /// - returns (`[B, T, V]` logits, `[L, B, S]` the state after the last token)
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<Tensor<3>>,
    ) -> (Tensor<3>, Tensor<3>) {
        match self {
            ContinuationModel::Gru(m) => m.forward(tokens, state),
            ContinuationModel::Transformer(m) => m.forward(tokens, state),
        }
    }
}
