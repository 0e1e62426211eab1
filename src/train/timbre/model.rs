//! The timbre decoder: `features [B, T, 2]` → dense(2→H) + ReLU → GRU(H) → concat with the
//! input features → dense(H+2→H) + ReLU → three heads:
//! - `amplitude` `[B, T, 1]`: DDSP's scaled sigmoid `2·σ(x)^ln10 + 1e-7` (Engel et al. 2020,
//!   appendix B: "exponentiated sigmoid"), linear and positive;
//! - `harmonics` `[B, T, N]`: softmax (non-negative, sums to 1);
//! - `noise` `[B, T, M]`: the same scaled sigmoid of `x − 5` (DDSP's initial bias, so the noise
//!   starts quiet).
//!
//! Causal by construction (dense layers per frame + a forward GRU), so `latency_samples` = 0.
//!
//! The GRU is written out rather than taken from `burn::nn::Gru` so that its parameters are
//! stored exactly as ONNX's `GRU` wants them: gate blocks **z, r, h**, "reset after"
//! (`linear_before_reset = 1`); [`super::export`] copies them without reordering. Per step:
//! ```text
//! z = σ(x·Wz + bWz + h·Rz + bRz)      r = σ(x·Wr + bWr + h·Rr + bRr)
//! n = tanh(x·Wh + bWh + r ⊙ (h·Rh + bRh))      h' = (1 − z) ⊙ n + z ⊙ h
//! ```

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_sigmoid, relu, sigmoid, softmax};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

/// Offset added to the noise head before its scaled sigmoid (DDSP's `initial_bias`).
pub const NOISE_BIAS: f32 = -5.0;
/// Exponent of the scaled sigmoid (`ln 10`).
pub const EXP_SIGMOID_EXPONENT: f32 = std::f32::consts::LN_10;
/// Maximum of the scaled sigmoid.
pub const EXP_SIGMOID_MAX: f32 = 2.0;
/// Floor of the scaled sigmoid.
pub const EXP_SIGMOID_FLOOR: f32 = 1e-7;

/// Sizes of a [`TimbreModel`]; saved in the training config so checkpoints rebuild it.
#[derive(Config, Debug, PartialEq)]
pub struct TimbreModelConfig {
    /// Hidden size `H` (dense layers and GRU state).
    #[config(default = 128)]
    pub hidden: usize,
    /// Harmonics `N` (width of the `harmonics` output).
    #[config(default = 32)]
    pub harmonics: usize,
    /// Noise bands `M` (width of the `noise` output), linear spacing up to 8 kHz.
    #[config(default = 32)]
    pub noise_bands: usize,
}

impl TimbreModelConfig {
    /// A freshly initialised model (seed the device first for reproducible weights).
    pub fn init(&self, device: &Device) -> TimbreModel {
        let h = self.hidden;
        TimbreModel {
            input: LinearConfig::new(2, h).init(device),
            gru: Gru::new(h, h, device),
            mid: LinearConfig::new(h + 2, h).init(device),
            amplitude: LinearConfig::new(h, 1).init(device),
            harmonics: LinearConfig::new(h, self.harmonics).init(device),
            noise: LinearConfig::new(h, self.noise_bands).init(device),
        }
    }

    /// Trained parameters.
    pub fn parameter_count(&self) -> usize {
        let (h, n, m) = (self.hidden, self.harmonics, self.noise_bands);
        (2 * h + h) + (6 * h * h + 6 * h) + ((h + 2) * h + h) + (h + 1) + (h * n + n) + (h * m + m)
    }
}

/// Single-layer GRU with ONNX's parameter layout (see the [module docs](self)).
#[derive(Module, Debug)]
pub struct Gru {
    /// Input weights `[I, 3H]`, column blocks z | r | h.
    pub w_input: Param<Tensor<2>>,
    /// Recurrent weights `[H, 3H]`, column blocks z | r | h.
    pub w_hidden: Param<Tensor<2>>,
    /// Input biases `[3H]`, z | r | h.
    pub b_input: Param<Tensor<1>>,
    /// Recurrent biases `[3H]`, z | r | h.
    pub b_hidden: Param<Tensor<1>>,
    /// Hidden size.
    pub hidden: usize,
}

impl Gru {
    /// Uniform(−1/√H, 1/√H) initialisation.
    pub fn new(input: usize, hidden: usize, device: &Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        let dist = Distribution::Uniform(-bound, bound);
        Self {
            w_input: Param::from_tensor(Tensor::random([input, 3 * hidden], dist, device)),
            w_hidden: Param::from_tensor(Tensor::random([hidden, 3 * hidden], dist, device)),
            b_input: Param::from_tensor(Tensor::random([3 * hidden], dist, device)),
            b_hidden: Param::from_tensor(Tensor::random([3 * hidden], dist, device)),
            hidden,
        }
    }

    /// Runs the GRU over a sequence.
    ///
    /// # Shapes
    /// - `input`: `[B, T, I]`; `state`: `[B, H]`
    /// - returns (`[B, T, H]` all states, `[B, H]` the last)
    pub fn forward(&self, input: Tensor<3>, state: Tensor<2>) -> (Tensor<3>, Tensor<2>) {
        let [batch, steps, d_input] = input.dims();
        let h = self.hidden;
        let projected = input
            .reshape([batch * steps, d_input])
            .matmul(self.w_input.val())
            .add(self.b_input.val().unsqueeze())
            .reshape([batch, steps, 3 * h]); // [B, T, 3H]
        let w_hidden = self.w_hidden.val();
        let b_hidden = self.b_hidden.val().unsqueeze::<2>();
        let mut state = state;
        let mut outputs = Vec::with_capacity(steps);
        // The backward pass of a slice writes its gradient into zeros the size of the sliced
        // tensor, so slicing each of T steps out of `[B, T, 3H]` would cost O(T²). Slicing
        // blocks of ~√T steps first, then steps out of their block, costs O(T·√T).
        let block = (steps as f64).sqrt().ceil().max(1.0) as usize;
        for start in (0..steps).step_by(block) {
            let len = block.min(steps - start);
            let chunk = projected.clone().narrow(1, start, len); // [B, len, 3H]
            for i in 0..len {
                let x = chunk.clone().narrow(1, i, 1).reshape([batch, 3 * h]); // [B, 3H]
                let r_h = state.clone().matmul(w_hidden.clone()).add(b_hidden.clone()); // [B, 3H]
                let gates =
                    sigmoid(x.clone().narrow(1, 0, 2 * h) + r_h.clone().narrow(1, 0, 2 * h));
                let z = gates.clone().narrow(1, 0, h);
                let r = gates.narrow(1, h, h);
                let n = (x.narrow(1, 2 * h, h) + r * r_h.narrow(1, 2 * h, h)).tanh();
                state = n.clone() + z * (state - n); // (1 − z)·n + z·h
                outputs.push(state.clone());
            }
        }
        (Tensor::stack(outputs, 1), state)
    }
}

/// Synthesiser controls for a sequence of frames.
#[derive(Debug, Clone)]
pub struct TimbreControls {
    /// `[B, T, 1]` linear amplitude.
    pub amplitude: Tensor<3>,
    /// `[B, T, N]` harmonic distribution (sums to 1).
    pub harmonics: Tensor<3>,
    /// `[B, T, M]` linear noise band magnitudes.
    pub noise: Tensor<3>,
    /// `[B, H]` state after the last frame.
    pub state: Tensor<2>,
}

/// DDSP's scaled sigmoid `2·σ(x)^ln10 + 1e-7`, computed as `exp(ln10 · log σ(x))` (stable for
/// very negative `x`).
pub fn exp_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    (log_sigmoid(x) * EXP_SIGMOID_EXPONENT).exp() * EXP_SIGMOID_MAX + EXP_SIGMOID_FLOOR
}

/// The decoder; see the [module docs](self).
#[derive(Module, Debug)]
pub struct TimbreModel {
    /// Input layer `[2, H]`.
    pub input: Linear,
    /// The recurrent core.
    pub gru: Gru,
    /// Post-GRU layer `[H + 2, H]` (GRU output concatenated with the input features).
    pub mid: Linear,
    /// Amplitude head `[H, 1]`.
    pub amplitude: Linear,
    /// Harmonic-distribution head `[H, N]`.
    pub harmonics: Linear,
    /// Noise head `[H, M]`.
    pub noise: Linear,
}

impl TimbreModel {
    /// The model with its harmonic head's biases tilted so the initial distribution falls
    /// `db_per_octave` dB per octave: harmonic `k`'s logit gains `−(dB / 20·log10 2)·ln k`, so
    /// harmonic `2k` starts `dB` below harmonic `k` (the softmax weights are amplitudes).
    pub fn with_harmonic_rolloff(mut self, db_per_octave: f32) -> Self {
        if db_per_octave == 0.0 {
            return self;
        }
        let per_ln = db_per_octave / (20.0 * std::f32::consts::LOG10_2);
        let tilt: Vec<f32> = (1..=self.harmonics.weight.dims()[1])
            .map(|k| -per_ln * (k as f32).ln())
            .collect();
        if let Some(bias) = self.harmonics.bias.take() {
            let device = bias.device();
            let len = tilt.len();
            let tilt = Tensor::<1>::from_data(TensorData::new(tilt, [len]), &device);
            // A new leaf, tracked again on an autodiff device, so the bias keeps training.
            self.harmonics.bias = Some(bias.map(|b| {
                let autodiff = b.is_autodiff();
                let tilted = (b + tilt).detach();
                if autodiff {
                    tilted.require_grad()
                } else {
                    tilted
                }
            }));
        }
        self
    }

    /// GRU hidden size `H`.
    pub fn hidden(&self) -> usize {
        self.gru.hidden
    }

    /// Controls for every frame.
    ///
    /// # Shapes
    /// - `features`: `[B, T, 2]`; `state`: `[B, H]` (`None` = zeros)
    /// - returns [`TimbreControls`] (`[B, T, 1]`, `[B, T, N]`, `[B, T, M]`, `[B, H]`)
    pub fn forward(&self, features: Tensor<3>, state: Option<Tensor<2>>) -> TimbreControls {
        let [batch, _, _] = features.dims();
        let device = features.device();
        let state = state.unwrap_or_else(|| Tensor::zeros([batch, self.hidden()], &device));
        let x = relu(self.input.forward(features.clone())); // [B, T, H]
        let (y, state) = self.gru.forward(x, state); // [B, T, H], [B, H]
        let y = Tensor::cat(vec![y, features], 2); // [B, T, H + 2]
        let y = relu(self.mid.forward(y)); // [B, T, H]
        TimbreControls {
            amplitude: exp_sigmoid(self.amplitude.forward(y.clone())),
            harmonics: softmax(self.harmonics.forward(y.clone()), 2),
            noise: exp_sigmoid(self.noise.forward(y) + NOISE_BIAS),
            state,
        }
    }
}
