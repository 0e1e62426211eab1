//! The model layer: manifests, ONNX inference on ONNX Runtime or tract, and a small ONNX
//! writer.
//!
//! Layering: this module uses no other Continuo module; `engine`, the plugins, the CLI and
//! the trainer use it. Inside it, `tensor`/`manifest`/`error` are plain data, `onnx_writer`
//! and `onnx_info` handle the protobuf, `backend` wraps the runtimes, and `loader`/`lookup`
//! compose them.
//!
//! A model is `models/<name>.onnx` plus `models/<name>.json` ([`Manifest`]). Loading
//! ([`load_model`]) = parse manifest → check contract version and kind → check sha256 →
//! inspect the ONNX → create a session → check I/O against the manifest → warm-up run. Every
//! failure is a [`ModelError`] naming the file and the reason.
//!
//! Models may be hostile: every size a manifest or ONNX file declares is checked against a
//! named cap ([`MAX_MANIFEST_BYTES`], [`MAX_ONNX_BYTES`], [`MAX_FIXED_DIM`],
//! [`MAX_TENSOR_ELEMENTS`]; ONNX constants must hold the data their dims declare) before
//! anything is allocated from it.
//!
//! Threading: sessions allocate inside `run`; they live on the worker thread, never the
//! audio thread. `Session::run` takes `&mut self`: one session per worker.

#![deny(missing_docs)]

pub mod backend;
pub mod error;
pub mod loader;
pub mod locate;
pub mod lookup;
pub mod manifest;
pub mod onnx_info;
pub mod onnx_writer;
pub mod tensor;

pub use backend::{
    describe_auto_backend, onnx_runtime, Backend, BackendChoice, OrtRuntime, RuntimeSearch,
    RuntimeUnavailable, Session,
};
pub use error::{chain_message, ModelError};
pub use loader::{
    load_model, load_model_with, LoadOptions, LoadedModel, ModelPaths, MAX_ONNX_BYTES,
};
pub use lookup::{scan, FoundModel, ModelDirs};
pub use manifest::{
    sha256_file, Dim, FeatureConfig, Manifest, ModelKind, SynthSpec, TensorSpec, VocabularyInfo,
    CONTRACT_VERSION, MAX_FIXED_DIM, MAX_MANIFEST_BYTES, MAX_TENSOR_ELEMENTS,
};
pub use onnx_info::IoInfo;
pub use tensor::{Dtype, Tensor, TensorData, TensorSlice, TensorView};
