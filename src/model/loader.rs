//! The loading pipeline: manifest → contract version → kind → sha256 → ONNX inspection →
//! session → I/O check against the manifest → warm-up run → [`LoadedModel`].
//!
//! Each step fails with a [`ModelError`] naming the file and the reason; nothing here panics,
//! so a caller (the plugin worker) can keep its previous model when a new one is broken.

use std::path::{Path, PathBuf};

use super::backend::{onnx_runtime, Backend, BackendChoice, OrtRuntime, RuntimeSearch, Session};
use super::error::{ModelError, Result};
use super::manifest::{
    read_capped, sha256_bytes, Dim, Manifest, ModelKind, TensorSpec, MAX_TENSOR_ELEMENTS,
};
use super::onnx_info::{inspect, IoInfo, OnnxInfo};
use super::tensor::{Tensor, TensorData};

/// Largest ONNX file loaded (256 MiB, some 64 M f32 weights; Continuo's models are around
/// 1 MiB). The file is read whole, so this is also the largest buffer a model file costs.
pub const MAX_ONNX_BYTES: u64 = 256 << 20;

/// How to load: which backend, and where ONNX Runtime's library may be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Backend wanted.
    pub backend: BackendChoice,
    /// Where to find the ONNX Runtime library if it is not initialised yet.
    pub runtime: RuntimeSearch,
}

/// Files a model was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The manifest (`<name>.json`).
    pub manifest: PathBuf,
    /// The ONNX file.
    pub onnx: PathBuf,
}

/// A verified, warmed-up model.
#[derive(Debug)]
pub struct LoadedModel {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The session, ready to run (move it to the worker that owns it).
    pub session: Session,
    /// Backend chosen.
    pub backend: Backend,
    /// Files it came from.
    pub paths: ModelPaths,
    /// With [`BackendChoice::Auto`], why ONNX Runtime was not used (for the UI:
    /// "using tract because …"); `None` when ONNX Runtime runs the model or tract was asked for.
    pub fallback_reason: Option<String>,
}

/// A manifest whose ONNX file exists, matches its hash and decodes as ONNX (no session).
#[derive(Debug, Clone)]
pub struct ValidatedModel {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The ONNX file.
    pub onnx_path: PathBuf,
    /// What the ONNX file declares.
    pub info: OnnxInfo,
}

/// Loads a model of `expected_kind` with the default runtime search (see [`RuntimeSearch`]).
///
/// # Errors
/// Any [`ModelError`]; see [`load_model_with`].
pub fn load_model(
    manifest_path: impl AsRef<Path>,
    expected_kind: ModelKind,
    backend: BackendChoice,
) -> Result<LoadedModel> {
    load_model_with(
        manifest_path,
        Some(expected_kind),
        &LoadOptions {
            backend,
            ..Default::default()
        },
    )
}

/// Loads a model; `expected_kind = None` accepts either kind (the CLI's `inspect`).
///
/// # Errors
/// In pipeline order: [`ModelError::ManifestMissing`], [`ModelError::Io`],
/// [`ModelError::ManifestParse`], [`ModelError::UnsupportedContractVersion`],
/// [`ModelError::ManifestInvalid`], [`ModelError::WrongKind`], [`ModelError::OnnxMissing`],
/// [`ModelError::HashMismatch`], [`ModelError::NotOnnx`], [`ModelError::UnsupportedOpset`],
/// [`ModelError::Backend`] (incl. ONNX Runtime requested but unavailable),
/// [`ModelError::UnsupportedOperator`], [`ModelError::IoMismatch`], [`ModelError::WarmupFailed`].
pub fn load_model_with(
    manifest_path: impl AsRef<Path>,
    expected_kind: Option<ModelKind>,
    options: &LoadOptions,
) -> Result<LoadedModel> {
    let manifest_path = manifest_path.as_ref();
    let (validated, bytes) = validate_inner(manifest_path, expected_kind)?;
    let ValidatedModel {
        manifest,
        onnx_path,
        info,
    } = validated;

    let (backend, runtime, fallback_reason) = choose_backend(options, &onnx_path)?;
    let mut session = Session::new(&onnx_path, &bytes, &info, backend, runtime)?;
    drop(bytes);
    check_io(&manifest, &session)?;
    warm_up(&manifest, &mut session)?;
    Ok(LoadedModel {
        manifest,
        session,
        backend,
        paths: ModelPaths {
            manifest: manifest_path.to_path_buf(),
            onnx: onnx_path,
        },
        fallback_reason,
    })
}

/// The cheap checks of the pipeline, without a session: manifest, kind, ONNX file present,
/// hash, ONNX decodable. Used by [`super::lookup::scan`] to list models with their validity.
///
/// # Errors
/// The manifest and file errors of [`load_model_with`], up to [`ModelError::UnsupportedOpset`].
pub fn validate(
    manifest_path: impl AsRef<Path>,
    expected_kind: Option<ModelKind>,
) -> Result<ValidatedModel> {
    validate_inner(manifest_path.as_ref(), expected_kind).map(|(v, _)| v)
}

fn validate_inner(
    manifest_path: &Path,
    expected_kind: Option<ModelKind>,
) -> Result<(ValidatedModel, Vec<u8>)> {
    let manifest = Manifest::load(manifest_path)?;
    if let Some(expected) = expected_kind {
        if manifest.kind != expected {
            return Err(ModelError::WrongKind {
                path: manifest_path.to_path_buf(),
                expected,
                found: manifest.kind,
            });
        }
    }
    let onnx_path = manifest.onnx_path(manifest_path);
    // Read once: the same bytes are hashed, inspected and handed to the backend, so the file
    // cannot change between the check and the load.
    let bytes = read_capped(&onnx_path, MAX_ONNX_BYTES)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ModelError::OnnxMissing {
                    path: onnx_path.clone(),
                    manifest: manifest_path.to_path_buf(),
                }
            } else {
                ModelError::Io {
                    path: onnx_path.clone(),
                    source,
                }
            }
        })?
        .map_err(|size| ModelError::FileTooLarge {
            path: onnx_path.clone(),
            size,
            max: MAX_ONNX_BYTES,
        })?;
    let actual = sha256_bytes(&bytes);
    if actual != manifest.onnx_sha256 {
        return Err(ModelError::HashMismatch {
            path: onnx_path,
            expected: manifest.onnx_sha256.clone(),
            actual,
        });
    }
    let info = inspect(&onnx_path, &bytes)?;
    Ok((
        ValidatedModel {
            manifest,
            onnx_path,
            info,
        },
        bytes,
    ))
}

type BackendPick = (Backend, Option<&'static OrtRuntime>, Option<String>);

fn choose_backend(options: &LoadOptions, onnx_path: &Path) -> Result<BackendPick> {
    match options.backend {
        BackendChoice::Tract => Ok((Backend::Tract, None, None)),
        BackendChoice::OnnxRuntime => match onnx_runtime(&options.runtime) {
            Ok(rt) => Ok((Backend::OnnxRuntime, Some(rt), None)),
            Err(why) => Err(ModelError::Backend {
                path: onnx_path.to_path_buf(),
                backend: Backend::OnnxRuntime,
                reason: why.reason,
            }),
        },
        BackendChoice::Auto => match onnx_runtime(&options.runtime) {
            Ok(rt) => Ok((Backend::OnnxRuntime, Some(rt), None)),
            Err(why) => Ok((Backend::Tract, None, Some(why.reason))),
        },
    }
}

/// Checks the session's real inputs/outputs against the manifest: same count and order of
/// names, same dtypes, same ranks, and every dim the model fixes equal to the manifest's
/// (a manifest may fix a dim the model leaves dynamic, not the reverse).
///
/// # Errors
/// [`ModelError::IoMismatch`] saying which tensor differs and how.
pub fn check_io(manifest: &Manifest, session: &Session) -> Result<()> {
    let mismatch = |detail: String| ModelError::IoMismatch {
        path: session.path().to_path_buf(),
        detail,
    };
    for (role, declared, actual) in [
        ("input", &manifest.inputs, session.inputs()),
        ("output", &manifest.outputs, session.outputs()),
    ] {
        if declared.len() != actual.len() {
            return Err(mismatch(format!(
                "manifest declares {} {role}s ({}), model has {} ({})",
                declared.len(),
                names(declared.iter().map(|s| s.name.as_str())),
                actual.len(),
                names(actual.iter().map(|s| s.name.as_str())),
            )));
        }
        for (i, (spec, io)) in declared.iter().zip(actual).enumerate() {
            compare_spec(role, i, spec, io).map_err(mismatch)?;
        }
    }
    Ok(())
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn compare_spec(
    role: &str,
    index: usize,
    spec: &TensorSpec,
    io: &IoInfo,
) -> std::result::Result<(), String> {
    if spec.name != io.name {
        return Err(format!(
            "{role} #{index} is `{}` in the manifest but `{}` in the model",
            spec.name, io.name
        ));
    }
    if io.dtype != Some(spec.dtype) {
        return Err(format!(
            "{role} `{}`: manifest says {}, model has {}",
            spec.name, spec.dtype, io.type_name
        ));
    }
    let Some(shape) = &io.shape else {
        return Ok(());
    };
    let show = |dims: &[Dim]| {
        format!(
            "[{}]",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if shape.len() != spec.shape.len() {
        return Err(format!(
            "{role} `{}`: manifest has rank {} {}, model has rank {} {}",
            spec.name,
            spec.shape.len(),
            show(&spec.shape),
            shape.len(),
            show(shape)
        ));
    }
    for (axis, (want, have)) in spec.shape.iter().zip(shape).enumerate() {
        match (want, have) {
            (Dim::Fixed(a), Dim::Fixed(b)) if a != b => {
                return Err(format!(
                    "{role} `{}`: dim {axis} is {a} in the manifest but {b} in the model",
                    spec.name
                ));
            }
            (Dim::Symbolic(s), Dim::Fixed(b)) => {
                return Err(format!(
                    "{role} `{}`: dim {axis} is symbolic `{s}` in the manifest but fixed to {b} in the model",
                    spec.name
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs the model once on zeros shaped from the manifest (symbolic dims = 1), so that the
/// first real call does not pay one-off costs, and checks that the outputs have the declared
/// types and ranks and are finite.
///
/// # Errors
/// [`ModelError::WarmupFailed`].
pub fn warm_up(manifest: &Manifest, session: &mut Session) -> Result<Vec<Tensor>> {
    let path = session.path().to_path_buf();
    let backend = session.backend();
    let fail = |reason: String| ModelError::WarmupFailed {
        path: path.clone(),
        backend,
        reason,
    };
    // Manifest validation capped these shapes; checked again for manifests built in code.
    let inputs: Vec<Tensor> = manifest
        .inputs
        .iter()
        .map(|s| {
            Tensor::zeros(s.dtype, s.concrete_shape(1), MAX_TENSOR_ELEMENTS).ok_or_else(|| {
                fail(format!(
                    "input `{}` has more than {MAX_TENSOR_ELEMENTS} elements",
                    s.name
                ))
            })
        })
        .collect::<Result<_>>()?;
    let views: Vec<_> = inputs.iter().map(Tensor::view).collect();
    let outputs = session.run(&views).map_err(|e| fail(e.to_string()))?;
    if outputs.len() != manifest.outputs.len() {
        return Err(fail(format!(
            "{} outputs, manifest declares {}",
            outputs.len(),
            manifest.outputs.len()
        )));
    }
    for (spec, out) in manifest.outputs.iter().zip(&outputs) {
        if out.dtype() != spec.dtype {
            return Err(fail(format!(
                "output `{}` is {}, manifest says {}",
                spec.name,
                out.dtype(),
                spec.dtype
            )));
        }
        let fixed_ok = out.shape.len() == spec.shape.len()
            && spec
                .shape
                .iter()
                .zip(&out.shape)
                .all(|(d, &n)| d.fixed().is_none_or(|f| f == n));
        if !fixed_ok {
            return Err(fail(format!(
                "output `{}` has shape {:?}, manifest says {spec}",
                spec.name, out.shape
            )));
        }
        if let TensorData::F32(v) = &out.data {
            if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                return Err(fail(format!(
                    "output `{}` contains {bad} for zero input",
                    spec.name
                )));
            }
        }
    }
    Ok(outputs)
}
