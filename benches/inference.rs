//! Per-call inference latency of two representative models on both backends, single thread.
//!
//! `cargo bench --bench inference` (needs `ORT_DYLIB_PATH` for the ONNX Runtime rows).
//! Prints a table: session creation time, median and p99 per `run` call.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use continuo::model::backend::{onnx_runtime, RuntimeSearch};
use continuo::model::loader::{load_model_with, LoadOptions};
use continuo::model::manifest::ModelKind;
use continuo::model::{BackendChoice, Tensor, TensorView};

struct Row {
    model: &'static str,
    backend: String,
    load: Duration,
    median: Duration,
    p99: Duration,
}

fn bench(
    model: &'static str,
    path: &std::path::Path,
    kind: ModelKind,
    backend: BackendChoice,
    inputs: &[Tensor],
    iters: usize,
) -> Row {
    let t0 = Instant::now();
    let opts = LoadOptions {
        backend,
        runtime: RuntimeSearch::default(),
    };
    let mut m = load_model_with(path, Some(kind), &opts).expect("load");
    let load = t0.elapsed();
    let views: Vec<TensorView<'_>> = inputs.iter().map(Tensor::view).collect();
    for _ in 0..iters / 10 + 5 {
        std::hint::black_box(m.session.run(&views).expect("run"));
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(m.session.run(&views).expect("run"));
            t.elapsed()
        })
        .collect();
    times.sort();
    Row {
        model,
        backend: m.backend.to_string(),
        load,
        median: times[times.len() / 2],
        p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(42);

    let hidden = 128;
    let (g, ins, outs) = decoder_graph(&mut rng, hidden);
    let decoder = write_model(dir.path(), "decoder", &g, ModelKind::Timbre, ins, outs);
    let decoder_params = g.parameter_count();
    let dec_inputs = vec![
        Tensor::f32(
            vec![1, DEC_FRAMES, DEC_FEATURES],
            rng.vec(DEC_FRAMES * DEC_FEATURES, 1.0),
        ),
        Tensor::f32(vec![1, 1, hidden], vec![0.0; hidden]),
    ];

    let tw = random_token_weights(&mut rng, 200, 128);
    let (g, ins, outs) = token_graph(&tw);
    let token = write_model(dir.path(), "token", &g, ModelKind::Continuation, ins, outs);
    let token_params = g.parameter_count();
    let tok_inputs = vec![
        Tensor::i64(vec![1, 1], vec![17]),
        Tensor::f32(vec![1, 1, tw.d], rng.vec(tw.d, 0.5)),
    ];

    let mut backends = vec![BackendChoice::Tract];
    match onnx_runtime(&RuntimeSearch::default()) {
        Ok(rt) => {
            println!("ONNX Runtime: {}", rt.library().display());
            backends.insert(0, BackendChoice::OnnxRuntime);
        }
        Err(e) => println!("ONNX Runtime rows skipped: {e}"),
    }

    let mut rows = Vec::new();
    for &b in &backends {
        rows.push(bench(
            "timbre decoder",
            &decoder,
            ModelKind::Timbre,
            b,
            &dec_inputs,
            300,
        ));
        rows.push(bench(
            "token step",
            &token,
            ModelKind::Continuation,
            b,
            &tok_inputs,
            3000,
        ));
    }

    println!();
    println!(
        "timbre decoder: [1,{DEC_FRAMES},{DEC_FEATURES}] → dense 128 ReLU ×2 → GRU({hidden}) → dense {} → sigmoid/softmax/sigmoid; {decoder_params} params",
        1 + DEC_HARMONICS + DEC_NOISE
    );
    println!(
        "token step: Gather(vocab {}, d {}) → GRU({}) 1 step → dense to logits; {token_params} params",
        tw.vocab, tw.d, tw.d
    );
    println!();
    println!("| model | backend | session load+warm-up | median / call | p99 / call | per unit |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let unit = if r.model == "token step" {
            format!("{:.0} tokens/s", 1.0 / r.median.as_secs_f64())
        } else {
            format!(
                "{:.1} µs/frame",
                r.median.as_secs_f64() * 1e6 / DEC_FRAMES as f64
            )
        };
        println!(
            "| {} | {} | {:.1} ms | {:.1} µs | {:.1} µs | {} |",
            r.model,
            r.backend,
            r.load.as_secs_f64() * 1e3,
            r.median.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            unit
        );
    }
}
