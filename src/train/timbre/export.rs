//! Trained weights → ONNX (through `crate::model::onnx_writer::GraphBuilder`) + manifest, and
//! the parity gate (style practice 18): the written files are loaded back through
//! `crate::model::load_model` on ONNX Runtime and on tract and run on random inputs (in two
//! calls, carrying `h_n` → `h0`), and every output must match burn's forward pass to
//! [`VERIFY_TOLERANCE`]. A negative control (z and r gates swapped) must fail the same check.
//!
//! Graph (`T` symbolic, batch 1):
//! ```text
//! features [1,T,2] ─ MatMul+Add ─ Relu ─ GRU(h0; z,r,h; linear_before_reset=1) ─┬─ h_n [1,1,H]
//!                  └──────────────────────── Concat(axis 2) ◄─────────────────────┘ (Y)
//!   ─ MatMul+Add ─ Relu ─┬─ MatMul+Add ─ Sigmoid ─ Pow(ln10) ─ Mul(2) ─ Add(1e-7) → amplitude
//!                        ├─ MatMul+Add ─ Softmax(axis 2)                         → harmonics
//!                        └─ MatMul+Add(bias − 5) ─ Sigmoid ─ Pow ─ Mul ─ Add       → noise
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dsp::synth::{NoiseBandSpacing, SynthConfig};
use crate::model::manifest::sha256_bytes;
use crate::model::onnx_writer::{GraphBuilder, GruWeights};
use crate::model::{
    load_model, BackendChoice, Dim, Dtype, FeatureConfig, Manifest, ModelKind, SynthSpec,
    TensorSpec, TensorView, CONTRACT_VERSION,
};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use super::data::timbre_rng;
use super::model::{
    TimbreModel, EXP_SIGMOID_EXPONENT, EXP_SIGMOID_FLOOR, EXP_SIGMOID_MAX, NOISE_BIAS,
};
use super::{timbre_feature_config, FRAME_RATE_HZ, HOP_SIZE, SAMPLE_RATE_HZ};

/// Largest absolute difference allowed between burn and a backend on any output.
pub const VERIFY_TOLERANCE: f32 = 1e-4;

/// A tensor's elements as `f32`, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

fn linear_weights(layer: &Linear) -> (usize, usize, Vec<f32>, Vec<f32>) {
    let w = layer.weight.val();
    let [i, o] = w.dims();
    let b = layer
        .bias
        .as_ref()
        .map(|b| to_vec(b.val()))
        .unwrap_or_else(|| vec![0.0; o]);
    (i, o, to_vec(w), b)
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The GRU in ONNX layout; `swap_gates` exchanges the z and r blocks (the negative control).
pub fn gru_weights(model: &TimbreModel, swap_gates: bool) -> GruWeights {
    let h = model.hidden();
    let [input_size, _] = model.gru.w_input.val().dims();
    let mut w = transpose(&to_vec(model.gru.w_input.val()), input_size, 3 * h);
    let mut r = transpose(&to_vec(model.gru.w_hidden.val()), h, 3 * h);
    let mut b = to_vec(model.gru.b_input.val());
    b.extend(to_vec(model.gru.b_hidden.val()));
    if swap_gates {
        let swap_rows = |m: &mut Vec<f32>, cols: usize| {
            let (z, rest) = m.split_at_mut(h * cols);
            z.swap_with_slice(&mut rest[..h * cols]);
        };
        swap_rows(&mut w, input_size);
        swap_rows(&mut r, h);
        for half in 0..2 {
            let base = half * 3 * h;
            for k in 0..h {
                b.swap(base + k, base + h + k);
            }
        }
    }
    GruWeights {
        input_size,
        hidden_size: h,
        w,
        r,
        b,
        linear_before_reset: true,
    }
}

fn scaled_sigmoid(g: &mut GraphBuilder, x: &str) -> String {
    let s = g.sigmoid(x);
    let e = g.fresh("exponent");
    g.initializer_f32(&e, &[], &[EXP_SIGMOID_EXPONENT]);
    let p = g.fresh("pow");
    g.node("Pow", &[&s, &e], &[&p], vec![]);
    let k = g.fresh("scale");
    g.initializer_f32(&k, &[], &[EXP_SIGMOID_MAX]);
    let y = g.mul(&p, &k);
    let f = g.fresh("floor");
    g.initializer_f32(&f, &[], &[EXP_SIGMOID_FLOOR]);
    g.add(&y, &f)
}

/// Model input and output specs of the contract.
pub fn io_specs(
    hidden: usize,
    harmonics: usize,
    noise_bands: usize,
) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let t = || Dim::from("T");
    let inputs = vec![
        TensorSpec::new("features", Dtype::F32, [Dim::from(1), t(), Dim::from(2)]),
        TensorSpec::new(
            "h0",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(hidden)],
        ),
    ];
    let outputs = vec![
        TensorSpec::new("amplitude", Dtype::F32, [Dim::from(1), t(), Dim::from(1)]),
        TensorSpec::new(
            "harmonics",
            Dtype::F32,
            [Dim::from(1), t(), Dim::from(harmonics)],
        ),
        TensorSpec::new(
            "noise",
            Dtype::F32,
            [Dim::from(1), t(), Dim::from(noise_bands)],
        ),
        TensorSpec::new(
            "h_n",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(hidden)],
        ),
    ];
    (inputs, outputs)
}

/// Builds the ONNX graph of `model` (see the [module docs](self)).
pub fn build_graph(model: &TimbreModel, name: &str, swap_gates: bool) -> GraphBuilder {
    let h = model.hidden();
    let (_, n, _, _) = linear_weights(&model.harmonics);
    let (_, m, noise_w, mut noise_b) = linear_weights(&model.noise);
    let (inputs, outputs) = io_specs(h, n, m);
    let mut g = GraphBuilder::new(name);
    g.producer("continuo-train timbre");
    let features = g.input(&inputs[0].name, Dtype::F32, &inputs[0].shape);
    let h0 = g.input(&inputs[1].name, Dtype::F32, &inputs[1].shape);
    let (i, o, w, b) = linear_weights(&model.input);
    let x = g.dense(&features, i, o, &w, &b);
    let x = g.relu(&x);
    let (y, y_h) = g.gru_batch_first(&x, Some(&h0), &gru_weights(model, swap_gates));
    let y = g.concat(&[&y, &features], 2);
    let (i, o, w, b) = linear_weights(&model.mid);
    let y = g.dense(&y, i, o, &w, &b);
    let y = g.relu(&y);
    let (i, o, w, b) = linear_weights(&model.amplitude);
    let a = g.dense(&y, i, o, &w, &b);
    let amplitude = scaled_sigmoid(&mut g, &a);
    let (i, o, w, b) = linear_weights(&model.harmonics);
    let hlog = g.dense(&y, i, o, &w, &b);
    let harmonics = g.softmax(&hlog, 2);
    noise_b.iter_mut().for_each(|v| *v += NOISE_BIAS);
    let nlog = g.dense(&y, h, m, &noise_w, &noise_b);
    let noise = scaled_sigmoid(&mut g, &nlog);
    for (value, spec) in [&amplitude, &harmonics, &noise, &y_h]
        .into_iter()
        .zip(&outputs)
    {
        g.output(value, &spec.name, Dtype::F32, &spec.shape);
    }
    g
}

/// Writes `<out>.onnx` and `<out>.json` for `model` (trained on `features`) and returns the
/// manifest path.
///
/// # Errors
/// I/O errors naming the file.
#[allow(clippy::too_many_arguments)]
pub fn write_model(
    model: &TimbreModel,
    out: &Path,
    name: &str,
    features: &FeatureConfig,
    synth: &SynthConfig,
    training: serde_json::Value,
    metrics: BTreeMap<String, f64>,
    swap_gates: bool,
) -> Result<PathBuf> {
    let graph = build_graph(model, name, swap_gates);
    let bytes = graph.to_bytes();
    let files = crate::train::run::ModelFiles::new(out);
    let (onnx_path, manifest_path) = (files.onnx, files.manifest);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&onnx_path, &bytes)
        .with_context(|| format!("cannot write {}", onnx_path.display()))?;
    let h = model.hidden();
    let (_, n, _, _) = linear_weights(&model.harmonics);
    let (_, m, _, _) = linear_weights(&model.noise);
    let (inputs, outputs) = io_specs(h, n, m);
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        name: name.to_owned(),
        kind: ModelKind::Timbre,
        description: None,
        sample_rate: Some(SAMPLE_RATE_HZ),
        hop_size: Some(HOP_SIZE as u32),
        frame_rate_hz: Some(FRAME_RATE_HZ),
        features: Some(features.clone()),
        vocabulary: None,
        synth: Some(SynthSpec {
            harmonics: n as u32,
            noise_bands: m as u32,
            noise_band_spacing: match synth.noise_band_spacing {
                NoiseBandSpacing::Linear => "linear",
                NoiseBandSpacing::Mel => "mel",
            }
            .into(),
            max_hz: synth.max_hz,
        }),
        onnx_file: None,
        inputs,
        outputs,
        latency_samples: 0,
        parameter_count: graph.parameter_count(),
        training: Some(training),
        metrics,
        onnx_sha256: sha256_bytes(&bytes),
    };
    manifest.save(&manifest_path)?;
    Ok(manifest_path)
}

/// Outcome of [`verify`] for one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendCheck {
    /// "ONNX Runtime" or "tract".
    pub backend: String,
    /// Largest absolute difference to burn over all outputs.
    pub max_abs_error: f32,
    /// Median wall time of one `run` with T = 4, µs.
    pub latency_t4_median_us: f64,
    /// 99th percentile of the same, µs.
    pub latency_t4_p99_us: f64,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// One entry per backend checked.
    pub backends: Vec<BackendCheck>,
}

impl Verification {
    /// Largest error over all backends.
    pub fn max_abs_error(&self) -> f32 {
        self.backends
            .iter()
            .map(|b| b.max_abs_error)
            .fold(0.0, f32::max)
    }
}

/// Runs burn's forward pass and both backends on the same random inputs; see the
/// [module docs](self). `model` may live on an autodiff device.
///
/// # Errors
/// A backend cannot load or run the model (ONNX Runtime needs `ORT_DYLIB_PATH` or a library
/// beside the binary), or an output differs by more than [`VERIFY_TOLERANCE`].
pub fn verify(model: &TimbreModel, manifest_path: &Path, seed: u64) -> Result<Verification> {
    let device = Device::flex();
    let model = model.valid();
    let h = model.hidden();
    let frames = 23;
    let split = 9;
    let mut rng = timbre_rng(seed, 0xE4);
    let features: Vec<f32> = (0..frames * 2).map(|_| rng.unit() as f32).collect();
    let h0: Vec<f32> = (0..h).map(|_| 0.5 * rng.symmetric()).collect();

    let x = Tensor::<3>::from_data(TensorData::new(features.clone(), [1, frames, 2]), &device);
    let s = Tensor::<2>::from_data(TensorData::new(h0.clone(), [1, h]), &device);
    let out = model.forward(x, Some(s));
    let expected = [
        to_vec(out.amplitude),
        to_vec(out.harmonics),
        to_vec(out.noise),
        to_vec(out.state),
    ];

    let mut checks = Vec::new();
    for choice in [BackendChoice::OnnxRuntime, BackendChoice::Tract] {
        let mut loaded = load_model(manifest_path, ModelKind::Timbre, choice).map_err(|e| {
            let hint = if choice == BackendChoice::OnnxRuntime {
                " (set ORT_DYLIB_PATH to libonnxruntime.so, e.g. /work/main/target/onnxruntime/libonnxruntime.so.1.31.1)"
            } else {
                ""
            };
            anyhow::anyhow!(
                "verification: cannot load {}: {}{hint}",
                manifest_path.display(),
                crate::model::chain_message(&e)
            )
        })?;
        // Two calls carrying the state: checks streaming as the plugin runs it.
        let mut got: [Vec<f32>; 4] = Default::default();
        let mut state = h0.clone();
        for (start, len) in [(0, split), (split, frames - split)] {
            let shape_x = [1, len, 2];
            let shape_h = [1, 1, h];
            let outputs = loaded.session.run(&[
                TensorView::f32(&shape_x, &features[start * 2..(start + len) * 2]),
                TensorView::f32(&shape_h, &state),
            ])?;
            for (k, t) in outputs.iter().enumerate().take(3) {
                got[k].extend_from_slice(t.as_f32().context("f32 output")?);
            }
            state = outputs[3].as_f32().context("f32 output")?.to_vec();
        }
        got[3] = state.clone();
        let mut max_abs_error = 0.0f32;
        for (a, b) in expected.iter().zip(&got) {
            if a.len() != b.len() {
                bail!(
                    "{}: output length {} vs burn {}",
                    loaded.backend,
                    b.len(),
                    a.len()
                );
            }
            for (x, y) in a.iter().zip(b) {
                let d = (x - y).abs();
                max_abs_error = max_abs_error.max(if d.is_nan() { f32::INFINITY } else { d });
            }
        }
        // Latency of one T = 4 call (what the plugin does per hop group).
        let mut times = Vec::with_capacity(300);
        let x4 = vec![0.5f32; 8];
        let shape_x = [1, 4, 2];
        let shape_h = [1, 1, h];
        for _ in 0..300 {
            let start = Instant::now();
            let outputs = loaded.session.run(&[
                TensorView::f32(&shape_x, &x4),
                TensorView::f32(&shape_h, &state),
            ])?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
            state = outputs[3].as_f32().context("f32 output")?.to_vec();
        }
        times.sort_by(f64::total_cmp);
        checks.push(BackendCheck {
            backend: loaded.backend.to_string(),
            max_abs_error,
            latency_t4_median_us: times[times.len() / 2],
            latency_t4_p99_us: times[times.len() * 99 / 100],
        });
        if max_abs_error > VERIFY_TOLERANCE || !max_abs_error.is_finite() {
            bail!(
                "verification failed on {}: max |burn − onnx| = {max_abs_error:e} > {VERIFY_TOLERANCE:e} ({})",
                loaded.backend,
                manifest_path.display()
            );
        }
    }
    Ok(Verification { backends: checks })
}

/// The negative control: the same model exported with z and r swapped, in a scratch folder,
/// must fail [`verify`]. Returns the error message of the (expected) failure.
///
/// # Errors
/// When the swapped export *passes* (the check would be blind to gate order) or cannot be
/// written.
pub fn negative_control(model: &TimbreModel, scratch_dir: &Path, seed: u64) -> Result<String> {
    std::fs::create_dir_all(scratch_dir)?;
    let out = scratch_dir.join("swapped-gates");
    let manifest = write_model(
        model,
        &out,
        "swapped-gates",
        &timbre_feature_config(super::F0_MIN_HZ),
        &SynthConfig::new(SAMPLE_RATE_HZ as f32, HOP_SIZE, 1, 0),
        serde_json::json!({"negative_control": true}),
        BTreeMap::new(),
        true,
    )?;
    match verify(model, &manifest, seed) {
        Ok(v) => bail!(
            "negative control passed verification (max error {:e}): the check cannot see gate order",
            v.max_abs_error()
        ),
        Err(e) if e.to_string().contains("verification failed") => Ok(e.to_string()),
        Err(e) => Err(e.context("negative control could not be checked")),
    }
}
