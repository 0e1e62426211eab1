//! The native backend: ONNX Runtime through `ort` with `load-dynamic`.
//!
//! The runtime library is found by [`RuntimeSearch`] and loaded **once per process** by
//! [`onnx_runtime`], which keeps the one ORT environment in a static for the rest of the
//! process (ORT refuses a second environment, and all plugin instances in a DAW share one).
//! Loading goes through `ort::init_from`, which returns an error, never `ort::init`, which
//! panics when the library is missing; a panic inside a plugin would cross into the host, so
//! the whole initialisation also runs under `catch_unwind`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{SessionInputValue, SessionInputs};
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{classify_load_error, Backend};
use crate::model::error::{ModelError, Result};
use crate::model::locate::this_binary_path;
use crate::model::manifest::Dim;
use crate::model::onnx_info::{IoInfo, OnnxInfo};
use crate::model::tensor::{Dtype, Tensor, TensorSlice, TensorView};

/// Environment variable that overrides where the runtime library is looked for.
pub const ORT_DYLIB_PATH_VAR: &str = "ORT_DYLIB_PATH";

/// Where to look for the ONNX Runtime shared library, in this order:
///
/// 1. `explicit`: if set, **only** this file is tried (the caller knows best).
/// 2. the file named by the `ORT_DYLIB_PATH` environment variable, if `use_env` and set;
/// 3. each directory of `dirs` (see [`runtime_library_in_dir`] for the file names accepted);
/// 4. if `next_to_this_binary`, the places of [`runtime_library_next_to_this_binary`].
///
/// Steps 2–4 fall through: a candidate that fails to load is recorded and the next one is
/// tried. System library paths are never searched, so the version loaded is always one we
/// shipped or were pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSearch {
    /// A library file to use exclusively.
    pub explicit: Option<PathBuf>,
    /// Honour `ORT_DYLIB_PATH`.
    pub use_env: bool,
    /// Directories to search (e.g. the plugin bundle's resource directory).
    pub dirs: Vec<PathBuf>,
    /// Search beside the binary this code is linked into.
    pub next_to_this_binary: bool,
}

impl Default for RuntimeSearch {
    fn default() -> Self {
        RuntimeSearch {
            explicit: None,
            use_env: true,
            dirs: Vec::new(),
            next_to_this_binary: true,
        }
    }
}

impl RuntimeSearch {
    /// Use exactly this library file.
    pub fn explicit(path: impl Into<PathBuf>) -> Self {
        RuntimeSearch {
            explicit: Some(path.into()),
            ..Default::default()
        }
    }

    /// Candidate library files in search order (existing files only, except `explicit` and
    /// `ORT_DYLIB_PATH`, which are returned as given so that their absence is reported).
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.explicit {
            return vec![p.clone()];
        }
        let mut out = Vec::new();
        if self.use_env {
            if let Some(p) = std::env::var_os(ORT_DYLIB_PATH_VAR).filter(|p| !p.is_empty()) {
                out.push(PathBuf::from(p));
            }
        }
        for dir in &self.dirs {
            out.extend(runtime_library_in_dir(dir));
        }
        if self.next_to_this_binary {
            out.extend(runtime_library_next_to_this_binary());
        }
        out
    }
}

/// Why ONNX Runtime is not available; shown by the UI as "using tract because …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeUnavailable {
    /// One line per candidate tried, or why none was found.
    pub reason: String,
    /// Library files that were tried, in order.
    pub tried: Vec<PathBuf>,
}

impl std::fmt::Display for RuntimeUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for RuntimeUnavailable {}

/// The process's ONNX Runtime: the library it was loaded from and its one environment.
#[derive(Debug)]
pub struct OrtRuntime {
    library: PathBuf,
    environment: ort::environment::Environment,
}

impl OrtRuntime {
    /// The library file ONNX Runtime was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
/// Serialises initialisation attempts (the OnceLock alone cannot hold a fallible init).
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The process's ONNX Runtime, initialising it on the first successful call.
///
/// Once a library has loaded, later calls return it whatever `search` says. A failure is not
/// cached: a later call (say, after the user installed the library) tries again.
///
/// # Errors
/// [`RuntimeUnavailable`] listing every candidate tried and why it failed.
pub fn onnx_runtime(
    search: &RuntimeSearch,
) -> std::result::Result<&'static OrtRuntime, RuntimeUnavailable> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let candidates = search.candidates();
    if candidates.is_empty() {
        return Err(RuntimeUnavailable {
            reason: format!(
                "no ONNX Runtime library found ({ORT_DYLIB_PATH_VAR} not set, none in {})",
                describe_dirs(search)
            ),
            tried: Vec::new(),
        });
    }
    let mut failures = Vec::new();
    for lib in &candidates {
        match init_from(lib) {
            Ok(rt) => return Ok(RUNTIME.get_or_init(|| rt)),
            Err(why) => failures.push(format!("{}: {why}", lib.display())),
        }
    }
    Err(RuntimeUnavailable {
        reason: format!("ONNX Runtime could not be loaded: {}", failures.join("; ")),
        tried: candidates,
    })
}

/// The process's ONNX Runtime if some call to [`onnx_runtime`] succeeded.
pub fn onnx_runtime_if_initialised() -> Option<&'static OrtRuntime> {
    RUNTIME.get()
}

fn describe_dirs(search: &RuntimeSearch) -> String {
    let mut dirs: Vec<String> = search
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    if search.next_to_this_binary {
        dirs.extend(
            library_dirs_next_to_this_binary()
                .iter()
                .map(|d| d.display().to_string()),
        );
    }
    if dirs.is_empty() {
        "no directory".into()
    } else {
        dirs.join(", ")
    }
}

fn init_from(lib: &Path) -> std::result::Result<OrtRuntime, String> {
    if !lib.is_file() {
        return Err("file does not exist".into());
    }
    // ort resolves a relative path against current_exe() with an `expect`; hand it an
    // absolute one.
    let lib = lib.canonicalize().map_err(|e| e.to_string())?;
    let attempt = std::panic::catch_unwind(|| -> std::result::Result<_, String> {
        let builder = ort::init_from(&lib).map_err(|e| e.to_string())?;
        builder
            .with_name("continuo")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    match attempt {
        Ok(Ok(environment)) => Ok(OrtRuntime {
            library: lib,
            environment,
        }),
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(format!(
            "ONNX Runtime initialisation panicked: {}",
            super::panic_text(&*panic)
        )),
    }
}

/// The ONNX Runtime library file in `dir`, if any: `libonnxruntime.so` or
/// `libonnxruntime.so.<version>` on Linux (`libonnxruntime[.<version>].dylib` on macOS,
/// `onnxruntime.dll` on Windows). `libonnxruntime_providers_*.so` are not matches. The
/// highest version wins when several are present.
pub fn runtime_library_in_dir(dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{}onnxruntime", std::env::consts::DLL_PREFIX);
    let suffix = std::env::consts::DLL_SUFFIX;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            let Some(rest) = name.strip_prefix(&prefix) else {
                return false;
            };
            // rest is "" + suffix, or suffix + ".1.31.1" (Linux), or ".1.31.1" + suffix (macOS)
            (rest == suffix
                || rest.starts_with(&format!("{suffix}."))
                || (rest.starts_with('.') && rest.ends_with(suffix)))
                && p.is_file()
        })
        .collect();
    // By numeric version: a plain path sort would rank `.so.1.9.0` above `.so.1.31.1`.
    found.sort_by_cached_key(|p| (library_version(p), p.clone()));
    found.pop()
}

/// The version numbers in a runtime library's file name (`libonnxruntime.so.1.31.1` and
/// `libonnxruntime.1.31.1.dylib` → `[1, 31, 1]`; no version → empty, which sorts first).
fn library_version(path: &Path) -> Vec<u64> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split('.')
        .filter_map(|part| part.parse::<u64>().ok())
        .collect()
}

/// Directories searched by [`runtime_library_next_to_this_binary`], in order, for the binary
/// (plugin `.so`/`.clap`, or executable) `this` code is linked into, living in directory `D`:
/// `D`, `D/Continuo-data`, `D/../Resources`, `D/../lib`.
///
/// This fits a VST3 bundle (`X.vst3/Contents/x86_64-linux/X.so`, library beside it or in
/// `X.vst3/Contents/Resources/`), a CLAP file with its [`BUNDLE_DATA_DIR`] beside it, and an
/// installed executable (`bin/../lib`).
///
/// [`BUNDLE_DATA_DIR`]: crate::model::locate::BUNDLE_DATA_DIR
pub fn library_dirs_next_to_this_binary() -> Vec<PathBuf> {
    let Some(bin) = this_binary_path() else {
        return Vec::new();
    };
    let Some(dir) = bin.parent() else {
        return Vec::new();
    };
    vec![
        dir.to_path_buf(),
        dir.join(crate::model::locate::BUNDLE_DATA_DIR),
        dir.join("../Resources"),
        dir.join("../lib"),
    ]
}

/// The ONNX Runtime library shipped beside the binary this code lives in (found with
/// `dladdr`, so inside a DAW it is the plugin file, not the DAW), searched in the directories
/// of [`library_dirs_next_to_this_binary`].
pub fn runtime_library_next_to_this_binary() -> Option<PathBuf> {
    library_dirs_next_to_this_binary()
        .iter()
        .find_map(|d| runtime_library_in_dir(d))
}

/// An ONNX Runtime session (single-threaded, no spinning) plus its I/O description.
pub struct OrtSession {
    session: ort::session::Session,
    path: PathBuf,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
}

impl std::fmt::Debug for OrtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtSession")
            .field("path", &self.path)
            .field("inputs", &self.inputs)
            .finish()
    }
}

impl OrtSession {
    /// Creates a session with one intra-op and one inter-op thread and spinning off: the
    /// worker thread is the only compute thread, and spinning would burn a core the DAW needs.
    ///
    /// # Errors
    /// [`ModelError::UnsupportedOperator`] or [`ModelError::Backend`].
    pub fn new(
        runtime: &'static OrtRuntime,
        path: &Path,
        bytes: &[u8],
        info: &OnnxInfo,
    ) -> Result<OrtSession> {
        let fail =
            |e: ort::Error| classify_load_error(path, Backend::OnnxRuntime, e.to_string(), info);
        let session = ort::session::Session::builder(&runtime.environment)
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(e.into()))?
            .with_intra_threads(1)
            .map_err(|e| fail(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.into()))?
            .with_parallel_execution(false)
            .map_err(|e| fail(e.into()))?
            .with_intra_op_spinning(false)
            .map_err(|e| fail(e.into()))?
            .with_inter_op_spinning(false)
            .map_err(|e| fail(e.into()))?
            .commit_from_memory(bytes)
            .map_err(fail)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| io_info(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| io_info(o.name(), o.dtype()))
            .collect();
        Ok(OrtSession {
            session,
            path: path.to_path_buf(),
            inputs,
            outputs,
        })
    }

    /// Inputs as ONNX Runtime reports them.
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// Outputs as ONNX Runtime reports them.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// ONNX file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs once; inputs are passed as views (no copy). Inputs were checked by `Session::run`.
    ///
    /// # Errors
    /// [`ModelError::Backend`].
    pub fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        let path = &self.path;
        let err = |reason: String| ModelError::Backend {
            path: path.clone(),
            backend: Backend::OnnxRuntime,
            reason,
        };
        let mut values: Vec<SessionInputValue<'_>> = Vec::with_capacity(inputs.len());
        for t in inputs {
            let v: SessionInputValue<'_> = match t.data {
                TensorSlice::F32(d) => TensorRef::from_array_view((t.shape, d)).map(Into::into),
                TensorSlice::I64(d) => TensorRef::from_array_view((t.shape, d)).map(Into::into),
            }
            .map_err(|e| err(e.to_string()))?;
            values.push(v);
        }
        let outs = self
            .session
            .run(SessionInputs::from(values.as_slice()))
            .map_err(|e| err(e.to_string()))?;
        let mut result = Vec::with_capacity(self.outputs.len());
        for spec in &self.outputs {
            let value = outs
                .get(&spec.name)
                .ok_or_else(|| err(format!("output `{}` missing", spec.name)))?;
            let tensor = match spec.dtype {
                Some(Dtype::F32) => {
                    let (shape, data) = value
                        .try_extract_tensor::<f32>()
                        .map_err(|e| err(e.to_string()))?;
                    Tensor::f32(shape.iter().map(|&d| d as usize).collect(), data.to_vec())
                }
                Some(Dtype::I64) => {
                    let (shape, data) = value
                        .try_extract_tensor::<i64>()
                        .map_err(|e| err(e.to_string()))?;
                    Tensor::i64(shape.iter().map(|&d| d as usize).collect(), data.to_vec())
                }
                None => {
                    return Err(err(format!(
                        "output `{}` has unsupported type {}",
                        spec.name, spec.type_name
                    )))
                }
            };
            result.push(tensor);
        }
        Ok(result)
    }
}

fn io_info(name: &str, ty: &ValueType) -> IoInfo {
    match ty {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => {
            let dtype = match ty {
                TensorElementType::Float32 => Some(Dtype::F32),
                TensorElementType::Int64 => Some(Dtype::I64),
                _ => None,
            };
            let type_name = match dtype {
                Some(d) => d.to_string(),
                None => format!("{ty:?}").to_lowercase(),
            };
            let dims = shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d >= 0 {
                        Dim::Fixed(d as usize)
                    } else {
                        match dimension_symbols.get(i) {
                            Some(s) if !s.is_empty() => Dim::Symbolic(s.clone()),
                            _ => Dim::Symbolic("?".into()),
                        }
                    }
                })
                .collect();
            IoInfo {
                name: name.to_owned(),
                dtype,
                type_name,
                shape: Some(dims),
            }
        }
        other => IoInfo {
            name: name.to_owned(),
            dtype: None,
            type_name: format!("{other:?}"),
            shape: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_file_names() {
        let dir = std::env::temp_dir().join(format!("continuo-ortdir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(runtime_library_in_dir(&dir), None);
        for name in [
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.31.1",
            "onnxruntime.txt",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(
            runtime_library_in_dir(&dir),
            Some(dir.join("libonnxruntime.so.1.31.1"))
        );
        // Numeric, not lexicographic: 1.9.0 < 1.31.1 although "9" > "3"; unversioned is lowest.
        for name in ["libonnxruntime.so.1.9.0", "libonnxruntime.so"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(
            runtime_library_in_dir(&dir),
            Some(dir.join("libonnxruntime.so.1.31.1"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn explicit_search_is_exclusive() {
        let s = RuntimeSearch {
            dirs: vec![PathBuf::from("/x")],
            ..RuntimeSearch::explicit("/a/libonnxruntime.so")
        };
        assert_eq!(s.candidates(), vec![PathBuf::from("/a/libonnxruntime.so")]);
    }

    #[test]
    fn dirs_next_to_binary_follow_the_documented_order() {
        let dirs = library_dirs_next_to_this_binary();
        assert_eq!(dirs.len(), 4);
        let base = &dirs[0];
        assert_eq!(dirs[1], base.join("Continuo-data"));
        assert_eq!(dirs[2], base.join("../Resources"));
        assert_eq!(dirs[3], base.join("../lib"));
    }
}
