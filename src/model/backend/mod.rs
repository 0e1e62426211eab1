//! The two inference backends behind one concrete [`Session`] enum.
//!
//! - [`Backend::OnnxRuntime`]: native ONNX Runtime loaded at run time from a shared library
//!   (see [`RuntimeSearch`]); one ORT environment per process, created once.
//! - [`Backend::Tract`]: pure Rust (`tract-onnx`), always available; the fallback when no
//!   runtime library can be loaded, so the plugin works without it.
//!
//! An enum rather than a trait object: two known variants, no dynamic dispatch in the worker
//! loop, and callers can still reach the variant when they need backend-specific features.
//!
//! Every backend allocates inside `run`: sessions belong on the worker thread, never on the
//! audio thread.

mod onnxruntime;
mod tract;

use std::fmt;
use std::path::{Path, PathBuf};

pub use self::onnxruntime::{
    library_dirs_next_to_this_binary, onnx_runtime, onnx_runtime_if_initialised,
    runtime_library_in_dir, runtime_library_next_to_this_binary, OrtRuntime, OrtSession,
    RuntimeSearch, RuntimeUnavailable,
};
pub use self::tract::TractSession;

use super::error::{ModelError, Result};
use super::onnx_info::{IoInfo, OnnxInfo};
use super::tensor::{element_count, Tensor, TensorView};

/// Which backend runs a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Native ONNX Runtime (`ort`, library loaded at run time).
    OnnxRuntime,
    /// Pure-Rust `tract-onnx`.
    Tract,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::OnnxRuntime => "ONNX Runtime",
            Backend::Tract => "tract",
        })
    }
}

/// Which backend the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// ONNX Runtime if its library can be loaded, otherwise tract (the reason is kept).
    #[default]
    Auto,
    /// ONNX Runtime only; fails if the library cannot be loaded.
    OnnxRuntime,
    /// tract only.
    Tract,
}

/// A model ready to run on one backend. `run` takes `&mut self`: one session per worker.
#[derive(Debug)]
pub enum Session {
    /// ONNX Runtime session.
    Ort(OrtSession),
    /// tract runnable plan.
    Tract(TractSession),
}

impl Session {
    /// Creates a session for the ONNX bytes of `path` on `backend`.
    ///
    /// `info` is the result of [`super::onnx_info::inspect`] on the same bytes; it names the
    /// operator when a backend refuses one. `runtime` is required for ONNX Runtime.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedOperator`] or [`ModelError::Backend`], naming `path`.
    pub fn new(
        path: &Path,
        bytes: &[u8],
        info: &OnnxInfo,
        backend: Backend,
        runtime: Option<&'static OrtRuntime>,
    ) -> Result<Session> {
        match backend {
            Backend::OnnxRuntime => {
                let runtime = runtime.ok_or_else(|| ModelError::Backend {
                    path: path.to_path_buf(),
                    backend,
                    reason: "ONNX Runtime is not initialised".into(),
                })?;
                OrtSession::new(runtime, path, bytes, info).map(Session::Ort)
            }
            Backend::Tract => TractSession::new(path, bytes, info).map(Session::Tract),
        }
    }

    /// Backend running this session.
    pub fn backend(&self) -> Backend {
        match self {
            Session::Ort(_) => Backend::OnnxRuntime,
            Session::Tract(_) => Backend::Tract,
        }
    }

    /// The model's inputs as the backend sees them, in run order.
    pub fn inputs(&self) -> &[IoInfo] {
        match self {
            Session::Ort(s) => s.inputs(),
            Session::Tract(s) => s.inputs(),
        }
    }

    /// The model's outputs as the backend sees them, in result order.
    pub fn outputs(&self) -> &[IoInfo] {
        match self {
            Session::Ort(s) => s.outputs(),
            Session::Tract(s) => s.outputs(),
        }
    }

    /// ONNX file this session was created from.
    pub fn path(&self) -> &Path {
        match self {
            Session::Ort(s) => s.path(),
            Session::Tract(s) => s.path(),
        }
    }

    /// Runs the model once. `inputs` are in [`Session::inputs`] order; the result holds one
    /// tensor per output, in [`Session::outputs`] order.
    ///
    /// Each call is independent: recurrent state goes in and out through explicit inputs and
    /// outputs (e.g. `h0` → `h_n`), never kept inside the session.
    ///
    /// # Errors
    /// [`ModelError::Backend`] for a wrong input count, dtype or length, or a runtime failure.
    pub fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        check_inputs(self.path(), self.backend(), self.inputs(), inputs)?;
        match self {
            Session::Ort(s) => s.run(inputs),
            Session::Tract(s) => s.run(inputs),
        }
    }
}

/// Rejects inputs that would make a backend fail obscurely (or, for ORT, read out of bounds).
fn check_inputs(
    path: &Path,
    backend: Backend,
    specs: &[IoInfo],
    inputs: &[TensorView<'_>],
) -> Result<()> {
    let err = |reason: String| ModelError::Backend {
        path: path.to_path_buf(),
        backend,
        reason,
    };
    if specs.len() != inputs.len() {
        return Err(err(format!(
            "model takes {} inputs, {} given",
            specs.len(),
            inputs.len()
        )));
    }
    for (spec, t) in specs.iter().zip(inputs) {
        if spec.dtype != Some(t.dtype()) {
            return Err(err(format!(
                "input `{}` is {}, {} given",
                spec.name,
                spec.type_name,
                t.dtype()
            )));
        }
        let Some(n) = element_count(t.shape) else {
            return Err(err(format!(
                "input `{}`: shape {:?} overflows",
                spec.name, t.shape
            )));
        };
        if n != t.len() {
            return Err(err(format!(
                "input `{}`: shape {:?} needs {n} elements, {} given",
                spec.name,
                t.shape,
                t.len()
            )));
        }
    }
    Ok(())
}

/// Turns a backend's session-creation error into the most specific [`ModelError`]: an
/// operator the backend does not implement becomes [`ModelError::UnsupportedOperator`] (the op
/// is recognised by name among those the graph uses), anything else [`ModelError::Backend`].
pub(crate) fn classify_load_error(
    path: &Path,
    backend: Backend,
    message: String,
    info: &OnnxInfo,
) -> ModelError {
    let lower = message.to_lowercase();
    const UNSUPPORTED_HINTS: &[&str] = &[
        "no op registered",
        "not a registered function/op",
        "could not find an implementation",
        "unimplemented",
        "not implemented",
        "unsupported op",
        "unknown op",
    ];
    if UNSUPPORTED_HINTS.iter().any(|h| lower.contains(h)) {
        // Prefer the longest matching name so "GRU" is not reported for "GRUCell".
        let op = info
            .op_types
            .iter()
            .filter(|op| contains_word(&message, op))
            .max_by_key(|op| op.len())
            .cloned()
            .unwrap_or_else(|| "?".into());
        return ModelError::UnsupportedOperator {
            path: PathBuf::from(path),
            op,
            backend,
            reason: message,
        };
    }
    ModelError::Backend {
        path: path.to_path_buf(),
        backend,
        reason: message,
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + word.len()..].chars().next();
        let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !is_ident(before) && !is_ident(after)
    })
}

/// Which backend [`BackendChoice::Auto`] uses on this machine, in words for logs and the CLI:
/// "ONNX Runtime (library path)" or "tract (why ONNX Runtime is unavailable)". Initialises
/// ONNX Runtime if it can: call it off the audio thread.
pub fn describe_auto_backend(search: &RuntimeSearch) -> String {
    match onnx_runtime(search) {
        Ok(runtime) => format!("{} ({})", Backend::OnnxRuntime, runtime.library().display()),
        Err(unavailable) => format!(
            "{} (ONNX Runtime unavailable: {unavailable})",
            Backend::Tract
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions move to the worker thread and errors travel over channels.
    #[test]
    fn thread_bounds() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        send::<Session>();
        send::<crate::model::loader::LoadedModel>();
        send_sync::<ModelError>();
        send_sync::<OrtRuntime>();
    }

    #[test]
    fn classify_names_the_operator() {
        let info = OnnxInfo {
            opsets: vec![],
            op_types: vec!["MatMul".into(), "FooBar".into()],
            inputs: vec![],
            outputs: vec![],
        };
        let e = classify_load_error(
            Path::new("m.onnx"),
            Backend::OnnxRuntime,
            "Fatal error: ai.onnx:FooBar(-1) is not a registered function/op".into(),
            &info,
        );
        assert!(
            matches!(&e, ModelError::UnsupportedOperator { op, .. } if op == "FooBar"),
            "{e}"
        );
        let e = classify_load_error(
            Path::new("m.onnx"),
            Backend::Tract,
            "out of memory".into(),
            &info,
        );
        assert!(matches!(e, ModelError::Backend { .. }));
    }
}
