//! Shared test helpers: a deterministic RNG, model generators (written with the crate's own
//! ONNX writer, so there are no binary fixtures), naive reference computations, and the
//! ONNX Runtime library location.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use continuo::model::backend::{onnx_runtime, OrtRuntime, RuntimeSearch};
use continuo::model::manifest::{
    sha256_bytes, Manifest, ModelKind, TensorSpec, VocabularyInfo, CONTRACT_VERSION,
};
use continuo::model::onnx_writer::{GraphBuilder, GruWeights};
use continuo::model::{Dim, Dtype};

/// The ONNX Runtime library for tests that need the native backend. Fails the test (never
/// skips it) when `ORT_DYLIB_PATH` is missing, so CI cannot pass without testing ORT.
pub fn ort_dylib() -> PathBuf {
    let p = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ORT_DYLIB_PATH is not set: this test needs the ONNX Runtime 1.31 library. \
             Run `cargo xtask test`, or `bash xtask/fetch-ort.sh DIR` and set ORT_DYLIB_PATH=DIR/libonnxruntime.so.1.31.1"
            )
        });
    let p = PathBuf::from(p);
    assert!(p.is_file(), "ORT_DYLIB_PATH={} does not exist", p.display());
    p
}

/// Initialises the process's ONNX Runtime from `ORT_DYLIB_PATH` (panics with the reason).
pub fn init_ort() -> &'static OrtRuntime {
    onnx_runtime(&RuntimeSearch::explicit(ort_dylib()))
        .unwrap_or_else(|e| panic!("ONNX Runtime init failed: {e}"))
}

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-scale, scale).
    pub fn f32(&mut self, scale: f32) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(scale)).collect()
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `y[r, :] = x[r, :] · w + b` for row-major `x` [rows, i], `w` [i, o].
pub fn dense_ref(x: &[f32], i: usize, o: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let rows = x.len() / i;
    let mut y = vec![0.0; rows * o];
    for r in 0..rows {
        for c in 0..o {
            let mut acc = b[c];
            for k in 0..i {
                acc += x[r * i + k] * w[k * o + c];
            }
            y[r * o + c] = acc;
        }
    }
    y
}

/// Reference GRU forward, written from the ONNX operator definition (gate order z, r, h).
/// `x` is [T, I]; returns (all hidden states [T, H], last state [H]).
pub fn gru_ref(wt: &GruWeights, x: &[f32], h0: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (ni, nh) = (wt.input_size, wt.hidden_size);
    let t_len = x.len() / ni;
    let mut h = h0.to_vec();
    let mut ys = Vec::with_capacity(t_len * nh);
    // row `g*H + j` of W/R belongs to gate g (0 = z, 1 = r, 2 = h)
    let wx = |g: usize, j: usize, xt: &[f32]| {
        (0..ni)
            .map(|k| wt.w[(g * nh + j) * ni + k] * xt[k])
            .sum::<f32>()
    };
    let rh = |g: usize, j: usize, hv: &[f32]| {
        (0..nh)
            .map(|k| wt.r[(g * nh + j) * nh + k] * hv[k])
            .sum::<f32>()
    };
    let wb = |g: usize, j: usize| wt.b[g * nh + j];
    let rb = |g: usize, j: usize| wt.b[3 * nh + g * nh + j];
    for t in 0..t_len {
        let xt = &x[t * ni..(t + 1) * ni];
        let z: Vec<f32> = (0..nh)
            .map(|j| sigmoid(wx(0, j, xt) + rh(0, j, &h) + wb(0, j) + rb(0, j)))
            .collect();
        let r: Vec<f32> = (0..nh)
            .map(|j| sigmoid(wx(1, j, xt) + rh(1, j, &h) + wb(1, j) + rb(1, j)))
            .collect();
        let h_tilde: Vec<f32> = if wt.linear_before_reset {
            (0..nh)
                .map(|j| (wx(2, j, xt) + r[j] * (rh(2, j, &h) + rb(2, j)) + wb(2, j)).tanh())
                .collect()
        } else {
            let rh_prod: Vec<f32> = (0..nh).map(|k| r[k] * h[k]).collect();
            (0..nh)
                .map(|j| (wx(2, j, xt) + rh(2, j, &rh_prod) + rb(2, j) + wb(2, j)).tanh())
                .collect()
        };
        for j in 0..nh {
            h[j] = (1.0 - z[j]) * h_tilde[j] + z[j] * h[j];
        }
        ys.extend_from_slice(&h);
    }
    (ys, h)
}

pub fn random_gru(
    rng: &mut Rng,
    input_size: usize,
    hidden_size: usize,
    linear_before_reset: bool,
) -> GruWeights {
    GruWeights {
        input_size,
        hidden_size,
        w: rng.vec(3 * hidden_size * input_size, 0.8),
        r: rng.vec(3 * hidden_size * hidden_size, 0.8),
        b: rng.vec(6 * hidden_size, 0.5),
        linear_before_reset,
    }
}

/// The same weights with the z and r gate blocks exchanged (the classic export bug).
pub fn swap_z_r(w: &GruWeights) -> GruWeights {
    let h = w.hidden_size;
    let swap = |v: &[f32], block: usize, blocks_per_half: usize| {
        let mut out = v.to_vec();
        for half in 0..(v.len() / (blocks_per_half * block)) {
            let base = half * blocks_per_half * block;
            out[base..base + block].copy_from_slice(&v[base + block..base + 2 * block]);
            out[base + block..base + 2 * block].copy_from_slice(&v[base..base + block]);
        }
        out
    };
    GruWeights {
        w: swap(&w.w, h * w.input_size, 3),
        r: swap(&w.r, h * h, 3),
        b: swap(&w.b, h, 3),
        ..w.clone()
    }
}

/// `y = tanh(x · W + b)`: x [1, T, I] → y [1, T, O].
pub fn mlp_graph(
    i: usize,
    o: usize,
    w: &[f32],
    b: &[f32],
) -> (GraphBuilder, Vec<TensorSpec>, Vec<TensorSpec>) {
    let mut g = GraphBuilder::new("mlp");
    let ins = vec![TensorSpec::new(
        "x",
        Dtype::F32,
        [Dim::from(1), Dim::from("T"), Dim::from(i)],
    )];
    let outs = vec![TensorSpec::new(
        "y",
        Dtype::F32,
        [Dim::from(1), Dim::from("T"), Dim::from(o)],
    )];
    let x = g.input("x", Dtype::F32, &ins[0].shape);
    let y = g.dense(&x, i, o, w, b);
    let y = g.tanh(&y);
    g.output(&y, "y", Dtype::F32, &outs[0].shape);
    (g, ins, outs)
}

/// GRU with explicit state: x [1, T, I], h0 [1, 1, H] → y [1, T, H], h_n [1, 1, H].
pub fn gru_graph(w: &GruWeights) -> (GraphBuilder, Vec<TensorSpec>, Vec<TensorSpec>) {
    let (i, h) = (w.input_size, w.hidden_size);
    let mut g = GraphBuilder::new("gru");
    let ins = vec![
        TensorSpec::new(
            "x",
            Dtype::F32,
            [Dim::from(1), Dim::from("T"), Dim::from(i)],
        ),
        TensorSpec::new("h0", Dtype::F32, [Dim::from(1), Dim::from(1), Dim::from(h)]),
    ];
    let outs = vec![
        TensorSpec::new(
            "y",
            Dtype::F32,
            [Dim::from(1), Dim::from("T"), Dim::from(h)],
        ),
        TensorSpec::new(
            "h_n",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(h)],
        ),
    ];
    let x = g.input("x", Dtype::F32, &ins[0].shape);
    let h0 = g.input("h0", Dtype::F32, &ins[1].shape);
    let (y, h_n) = g.gru_batch_first(&x, Some(&h0), w);
    g.output(&y, "y", Dtype::F32, &outs[0].shape);
    g.output(&h_n, "h_n", Dtype::F32, &outs[1].shape);
    (g, ins, outs)
}

/// Weights of the token-step model.
pub struct TokenWeights {
    pub vocab: usize,
    pub d: usize,
    pub embedding: Vec<f32>,
    pub gru: GruWeights,
    pub out_w: Vec<f32>,
    pub out_b: Vec<f32>,
}

pub fn random_token_weights(rng: &mut Rng, vocab: usize, d: usize) -> TokenWeights {
    TokenWeights {
        vocab,
        d,
        embedding: rng.vec(vocab * d, 1.0),
        gru: random_gru(rng, d, d, true),
        out_w: rng.vec(d * vocab, 0.3),
        out_b: rng.vec(vocab, 0.1),
    }
}

/// Continuation step: token [1, 1] (i64), h0 [1, 1, d] → logits [1, 1, vocab], h_n [1, 1, d].
/// Gather (embedding) → GRU one step → MatMul + Add.
pub fn token_graph(tw: &TokenWeights) -> (GraphBuilder, Vec<TensorSpec>, Vec<TensorSpec>) {
    let d = tw.d;
    let mut g = GraphBuilder::new("token_step");
    let ins = vec![
        TensorSpec::new("token", Dtype::I64, [Dim::from(1), Dim::from(1)]),
        TensorSpec::new("h0", Dtype::F32, [Dim::from(1), Dim::from(1), Dim::from(d)]),
    ];
    let outs = vec![
        TensorSpec::new(
            "logits",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(tw.vocab)],
        ),
        TensorSpec::new(
            "h_n",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(d)],
        ),
    ];
    let token = g.input("token", Dtype::I64, &ins[0].shape);
    let h0 = g.input("h0", Dtype::F32, &ins[1].shape);
    let emb = g.initializer_f32("embedding", &[tw.vocab, d], &tw.embedding);
    let x = g.gather(&emb, &token, 0); // [1, 1, d] = [T, B, d]
    let (_y, h_n) = g.gru(&x, Some(&h0), &tw.gru); // h_n [1, 1, d]
    let logits = g.dense(&h_n, d, tw.vocab, &tw.out_w, &tw.out_b);
    g.output(&logits, "logits", Dtype::F32, &outs[0].shape);
    g.output(&h_n, "h_n", Dtype::F32, &outs[1].shape);
    (g, ins, outs)
}

pub fn token_ref(tw: &TokenWeights, token: usize, h0: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let x = &tw.embedding[token * tw.d..(token + 1) * tw.d];
    let (_, h) = gru_ref(&tw.gru, x, h0);
    let logits = dense_ref(&h, tw.d, tw.vocab, &tw.out_w, &tw.out_b);
    (logits, h)
}

/// Frames, feature size, harmonics and noise bands of the representative timbre decoder.
pub const DEC_FRAMES: usize = 64;
pub const DEC_FEATURES: usize = 2;
pub const DEC_HARMONICS: usize = 32;
pub const DEC_NOISE: usize = 16;

/// A representative timbre decoder: features [1, 64, 2] → dense 128 + ReLU → dense 128 +
/// ReLU → GRU(hidden) → dense (1 + 32 + 16) → amplitude (sigmoid) [1, 64, 1], harmonic
/// distribution (softmax) [1, 64, 32], noise bands (sigmoid) [1, 64, 16].
pub fn decoder_graph(
    rng: &mut Rng,
    hidden: usize,
) -> (GraphBuilder, Vec<TensorSpec>, Vec<TensorSpec>) {
    let (f, t) = (DEC_FEATURES, DEC_FRAMES);
    let out_dim = 1 + DEC_HARMONICS + DEC_NOISE;
    let mut g = GraphBuilder::new("timbre_decoder");
    let ins = vec![
        TensorSpec::new(
            "features",
            Dtype::F32,
            [Dim::from(1), Dim::from(t), Dim::from(f)],
        ),
        TensorSpec::new(
            "h0",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(hidden)],
        ),
    ];
    let outs = vec![
        TensorSpec::new(
            "amplitude",
            Dtype::F32,
            [Dim::from(1), Dim::from(t), Dim::from(1)],
        ),
        TensorSpec::new(
            "harmonics",
            Dtype::F32,
            [Dim::from(1), Dim::from(t), Dim::from(DEC_HARMONICS)],
        ),
        TensorSpec::new(
            "noise",
            Dtype::F32,
            [Dim::from(1), Dim::from(t), Dim::from(DEC_NOISE)],
        ),
        TensorSpec::new(
            "h_n",
            Dtype::F32,
            [Dim::from(1), Dim::from(1), Dim::from(hidden)],
        ),
    ];
    let x = g.input("features", Dtype::F32, &ins[0].shape);
    let h0 = g.input("h0", Dtype::F32, &ins[1].shape);
    let y = g.dense(&x, f, 128, &rng.vec(f * 128, 0.7), &rng.vec(128, 0.1));
    let y = g.relu(&y);
    let y = g.dense(&y, 128, 128, &rng.vec(128 * 128, 0.1), &rng.vec(128, 0.1));
    let y = g.relu(&y);
    let gru = random_gru(rng, 128, hidden, true);
    let gru = GruWeights {
        w: gru.w.iter().map(|v| v * 0.2).collect(),
        r: gru.r.iter().map(|v| v * 0.2).collect(),
        ..gru
    };
    let (y, h_n) = g.gru_batch_first(&y, Some(&h0), &gru);
    let y = g.dense(
        &y,
        hidden,
        out_dim,
        &rng.vec(hidden * out_dim, 0.2),
        &rng.vec(out_dim, 0.1),
    );
    let amp = g.slice(&y, &[0], &[1], &[2]);
    let amp = g.sigmoid(&amp);
    let harm = g.slice(&y, &[1], &[1 + DEC_HARMONICS as i64], &[2]);
    let harm = g.softmax(&harm, 2);
    let noise = g.slice(&y, &[1 + DEC_HARMONICS as i64], &[out_dim as i64], &[2]);
    let noise = g.sigmoid(&noise);
    g.output(&amp, "amplitude", Dtype::F32, &outs[0].shape);
    g.output(&harm, "harmonics", Dtype::F32, &outs[1].shape);
    g.output(&noise, "noise", Dtype::F32, &outs[2].shape);
    g.output(&h_n, "h_n", Dtype::F32, &outs[3].shape);
    (g, ins, outs)
}

/// Writes `<dir>/<stem>.onnx` and a matching `<dir>/<stem>.json`; returns the manifest path.
pub fn write_model(
    dir: &Path,
    stem: &str,
    graph: &GraphBuilder,
    kind: ModelKind,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
) -> PathBuf {
    let bytes = graph.to_bytes();
    std::fs::write(dir.join(format!("{stem}.onnx")), &bytes).unwrap();
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        name: stem.to_owned(),
        kind,
        description: None,
        sample_rate: (kind == ModelKind::Timbre).then_some(48_000),
        hop_size: (kind == ModelKind::Timbre).then_some(480),
        frame_rate_hz: (kind == ModelKind::Timbre).then_some(100.0),
        features: None,
        vocabulary: (kind == ModelKind::Continuation).then(|| VocabularyInfo {
            version: "test-1".into(),
            size: 200,
        }),
        synth: None,
        onnx_file: None,
        inputs,
        outputs,
        latency_samples: 0,
        parameter_count: graph.parameter_count(),
        training: None,
        metrics: Default::default(),
        onnx_sha256: sha256_bytes(&bytes),
    };
    let path = dir.join(format!("{stem}.json"));
    manifest.save(&path).unwrap();
    path
}

/// A token-step model with random weights and this build's vocabulary (so the generator and
/// the plugin accept it), hidden size `hidden`; returns its manifest path.
pub fn random_continuation_model(dir: &Path, stem: &str, seed: u64, hidden: usize) -> PathBuf {
    use continuo::midi::tokenizer::{vocab_size, VOCAB_VERSION};
    let mut rng = Rng::new(seed);
    let weights = random_token_weights(&mut rng, vocab_size(), hidden);
    let (graph, inputs, outputs) = token_graph(&weights);
    let path = write_model(dir, stem, &graph, ModelKind::Continuation, inputs, outputs);
    let mut manifest = Manifest::load(&path).unwrap();
    manifest.vocabulary = Some(VocabularyInfo {
        version: VOCAB_VERSION.into(),
        size: vocab_size() as u32,
    });
    manifest.save(&path).unwrap();
    path
}

/// The notes of every MIDI file in `tests/fixtures/<dir>/`, by path, in file-name order.
pub fn fixture_songs(dir: &str) -> Vec<(PathBuf, Vec<continuo::midi::Note>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("fixture entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let notes = continuo::midi::read(&path)
                .and_then(|song| song.melodic_notes(None))
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, notes)
        })
        .collect()
}
