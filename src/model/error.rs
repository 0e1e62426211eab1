//! The one error type of the model layer.
//!
//! Every variant names the file it is about (manifest or ONNX file) and says why, so the
//! plugin UI and the CLI can show the message as is ("timbre.json: sha256 mismatch …") and the
//! plugin can keep running on its previous model.
//!
//! Error convention of the crate: a variant that wraps another error marks it `#[source]` and
//! does not repeat it in its `Display`; whoever prints walks the chain (anyhow's `{:#}` in the
//! CLI, [`chain_message`] elsewhere), so each cause appears exactly once. Wrappers that add
//! nothing of their own are `#[error(transparent)]`.

use std::path::PathBuf;

use super::backend::Backend;
use super::manifest::ModelKind;

/// Why a model could not be listed, loaded or run.
///
/// `Display` always starts with the path of the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The manifest file does not exist.
    #[error("{}: manifest not found", path.display())]
    ManifestMissing {
        /// Manifest path that was looked for.
        path: PathBuf,
    },

    /// A file exists but could not be read (permissions, I/O error, not a regular file …).
    #[error("{}: cannot read", path.display())]
    Io {
        /// File that could not be read or written.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than the loader reads for its kind (a hostile or mistaken file).
    #[error("{}: the file is {size} bytes; at most {max} are read", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The cap, bytes ([`super::manifest::MAX_MANIFEST_BYTES`] or
        /// [`super::loader::MAX_ONNX_BYTES`]).
        max: u64,
    },

    /// The manifest is not valid JSON or does not match the contract (missing field, wrong type).
    #[error("{}: invalid manifest: {reason}", path.display())]
    ManifestParse {
        /// Manifest path.
        path: PathBuf,
        /// serde's message, e.g. "missing field `name`".
        reason: String,
    },

    /// The manifest parsed but its content is inconsistent (e.g. an empty input list).
    #[error("{}: invalid manifest: {reason}", path.display())]
    ManifestInvalid {
        /// Manifest path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The manifest was written for a contract version this build cannot read.
    #[error(
        "{}: model contract version {found} is not supported (this build reads versions {min_supported}..={supported}); {hint}",
        path.display()
    )]
    UnsupportedContractVersion {
        /// Manifest path.
        path: PathBuf,
        /// Version found in the manifest.
        found: u32,
        /// Oldest version that can still be migrated.
        min_supported: u32,
        /// Newest (current) version.
        supported: u32,
        /// What the user can do about it.
        hint: &'static str,
    },

    /// The model is of another kind than the caller needs (timbre vs continuation).
    #[error("{}: model kind is `{found}` but `{expected}` is required", path.display())]
    WrongKind {
        /// Manifest path.
        path: PathBuf,
        /// Kind the caller asked for.
        expected: ModelKind,
        /// Kind written in the manifest.
        found: ModelKind,
    },

    /// The ONNX file the manifest refers to does not exist.
    #[error("{}: ONNX file not found (referenced by {})", path.display(), manifest.display())]
    OnnxMissing {
        /// ONNX path that was looked for.
        path: PathBuf,
        /// Manifest that refers to it.
        manifest: PathBuf,
    },

    /// The ONNX file's sha256 differs from the manifest's `onnx_sha256`.
    #[error("{}: sha256 mismatch: manifest expects {expected}, file has {actual}", path.display())]
    HashMismatch {
        /// ONNX path.
        path: PathBuf,
        /// Hash written in the manifest.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },

    /// The file is not an ONNX model (not a parseable `ModelProto`, or no graph in it).
    #[error("{}: not an ONNX model: {reason}", path.display())]
    NotOnnx {
        /// ONNX path.
        path: PathBuf,
        /// Decoder's reason.
        reason: String,
    },

    /// The model uses an operator the backend does not implement.
    #[error("{}: operator `{op}` is not supported by {backend}: {reason}", path.display())]
    UnsupportedOperator {
        /// ONNX path.
        path: PathBuf,
        /// Operator type (e.g. `GRU`), or `?` if the backend did not say which.
        op: String,
        /// Backend that refused it.
        backend: Backend,
        /// Backend's message.
        reason: String,
    },

    /// The model imports an operator-set version this module does not accept.
    #[error(
        "{}: opset {version} of domain `{domain}` is not supported (max {max})",
        path.display()
    )]
    UnsupportedOpset {
        /// ONNX path.
        path: PathBuf,
        /// Operator-set domain (`ai.onnx` for the default domain).
        domain: String,
        /// Version imported by the model.
        version: i64,
        /// Highest version accepted.
        max: i64,
    },

    /// The model's real inputs/outputs differ from what the manifest declares.
    #[error("{}: model does not match its manifest: {detail}", path.display())]
    IoMismatch {
        /// ONNX path.
        path: PathBuf,
        /// Which input/output differs and how.
        detail: String,
    },

    /// Any other backend failure (session creation, run).
    #[error("{}: {backend} error: {reason}", path.display())]
    Backend {
        /// ONNX path.
        path: PathBuf,
        /// Backend that failed.
        backend: Backend,
        /// Backend's message.
        reason: String,
    },

    /// The warm-up run with zero inputs failed or produced unusable output.
    #[error("{}: warm-up run failed on {backend}: {reason}", path.display())]
    WarmupFailed {
        /// ONNX path.
        path: PathBuf,
        /// Backend used.
        backend: Backend,
        /// What went wrong.
        reason: String,
    },
}

impl ModelError {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ModelError::ManifestMissing { path }
            | ModelError::Io { path, .. }
            | ModelError::FileTooLarge { path, .. }
            | ModelError::ManifestParse { path, .. }
            | ModelError::ManifestInvalid { path, .. }
            | ModelError::UnsupportedContractVersion { path, .. }
            | ModelError::WrongKind { path, .. }
            | ModelError::OnnxMissing { path, .. }
            | ModelError::HashMismatch { path, .. }
            | ModelError::NotOnnx { path, .. }
            | ModelError::UnsupportedOperator { path, .. }
            | ModelError::UnsupportedOpset { path, .. }
            | ModelError::IoMismatch { path, .. }
            | ModelError::Backend { path, .. }
            | ModelError::WarmupFailed { path, .. } => path,
        }
    }

    /// Maps an I/O error on `path` to [`ModelError::ManifestMissing`] / [`ModelError::Io`].
    pub(crate) fn from_manifest_io(path: PathBuf, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::ManifestMissing { path }
        } else {
            ModelError::Io { path, source }
        }
    }
}

/// `error` and each of its causes, joined with ": " (the text anyhow's `{:#}` prints), for
/// messages shown outside the CLI (plugin status, logs).
pub fn chain_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Result alias of the model layer.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
