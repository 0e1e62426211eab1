//! The offline trainer behind `continuo-train` (feature `train`): continuation models for
//! Continuo Phrase and timbre models for Style and Voice, trained with burn on the CPU and
//! exported to the plugins' ONNX contract.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`data`] | MIDI folder → token sequences (library tokenizer), split by file-name hash, batches |
//! | [`model`] | the networks: embedding → GRU stack → logits (ONNX's GRU layout), or a windowed Transformer |
//! | [`run`] | what both trainers share: checkpoint folder, resume, Ctrl-C, loss history, progress |
//! | [`training`] | the continuation trainer: config with seed, TBPTT loop, exact resume |
//! | [`export`] | burn weights → one-token-step ONNX, verified against burn on both backends |
//! | [`compare`] | models side by side on one held-out split: perplexity, tokens/s, first note |
//! | [`eval`] | held-out perplexity / bits per token vs the library's unigram and 4-gram |
//! | [`report`] | the continuation model's `NAME.report.md` |
//! | [`plot`] | both trainers' text-free `NAME.loss.png` |
//! | [`check`] | what a data folder holds (MIDI and WAV), file by file |
//! | [`pipeline`] | the binary's commands as functions |
//! | [`timbre`] | the timbre trainer: WAV folder → decoder, paired evaluation, export |
//!
//! One source of truth: tokenization, n-gram baselines, the manifest, the ONNX writer and the
//! inference runtime all come from the library; the trainer only adds the network.

pub mod check;
pub mod compare;
pub mod data;
pub mod eval;
pub mod export;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod report;
pub mod run;
pub mod timbre;
pub mod training;
