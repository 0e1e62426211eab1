//! The model manifest: `models/<name>.json`, the contract between the trainer, which writes
//! it next to `models/<name>.onnx`, and the plugins/CLI, which refuse a model that breaks it.
//!
//! Reading goes through raw JSON first so that the contract version can be checked (and older
//! versions migrated) before the typed parse, which would otherwise fail on renamed fields
//! with a confusing "missing field" message.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ModelError, Result};
use super::tensor::Dtype;

/// Contract version written by this build. Bump it when the manifest or the model I/O
/// contract changes incompatibly, and add a step to [`migrate`].
///
/// - 2: timbre manifests record the synthesis band, `synth.max_hz` (v1 models were all
///   synthesised at their analysis rate, so migration fills in `sample_rate / 2`).
pub const CONTRACT_VERSION: u32 = 2;

/// Oldest contract version [`migrate`] can bring up to [`CONTRACT_VERSION`].
pub const MIN_CONTRACT_VERSION: u32 = 1;

/// Largest manifest file read (4 MiB; real manifests are a few KiB, training notes included),
/// so a hostile "manifest" cannot make the loader read gigabytes.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Largest fixed dimension a manifest or an ONNX file may declare for a model input or output
/// (2^20). Widths in the contract (state, logits, harmonics) are hundreds; this only stops
/// hostile counts before anything is sized by them.
pub const MAX_FIXED_DIM: usize = 1 << 20;

/// Most dims a model input or output may have.
pub const MAX_TENSOR_RANK: usize = 8;

/// Most elements of one input or output with every symbolic dim taken as 1 (2^22 = 4 Mi:
/// 16 MiB of f32, 32 MiB of i64): what the warm-up run and the callers' state buffers allocate.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 22;

/// Most inputs plus outputs a manifest may declare.
pub const MAX_TENSORS: usize = 64;

/// What a model does, which decides who may load it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Frame-wise features (f0, loudness, …) → synthesis controls (Continuo Style).
    Timbre,
    /// Token history → next-token logits (Continuo Phrase).
    Continuation,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Timbre => "timbre",
            ModelKind::Continuation => "continuation",
        })
    }
}

/// One tensor dimension: a fixed size, or a symbolic name (`"T"`, `"batch"`) whose size is
/// chosen at run time. In JSON: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// Fixed size.
    Fixed(usize),
    /// Size chosen per call, named as in the ONNX file's `dim_param`.
    Symbolic(String),
}

impl Dim {
    /// The fixed size, if any.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbolic(_) => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => write!(f, "{s}"),
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Symbolic(s.to_owned())
    }
}

/// Name, element type and shape of one model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape; symbolic dims are sized at run time.
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// Convenience constructor.
    pub fn new(name: &str, dtype: Dtype, shape: impl IntoIterator<Item = Dim>) -> Self {
        TensorSpec {
            name: name.to_owned(),
            dtype,
            shape: shape.into_iter().collect(),
        }
    }

    /// Checks the shape against [`MAX_TENSOR_RANK`], [`MAX_FIXED_DIM`] and
    /// [`MAX_TENSOR_ELEMENTS`] (symbolic dims count as 1), with checked arithmetic; the error
    /// names the offending dim.
    pub fn check_size(&self) -> std::result::Result<(), String> {
        if self.shape.len() > MAX_TENSOR_RANK {
            return Err(format!(
                "rank {} is above the contract's {MAX_TENSOR_RANK}",
                self.shape.len()
            ));
        }
        let mut elements: usize = 1;
        for (axis, dim) in self.shape.iter().enumerate() {
            let size = dim.fixed().unwrap_or(1);
            check_dim(&format!("shape[{axis}]"), size)?;
            elements = elements
                .checked_mul(size)
                .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
                .ok_or_else(|| {
                    format!(
                        "shape {} has more than {MAX_TENSOR_ELEMENTS} elements",
                        self.shape_text()
                    )
                })?;
        }
        Ok(())
    }

    fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        format!("[{}]", dims.join(", "))
    }

    /// Shape with every symbolic dim replaced by `symbolic` (warm-up uses 1).
    pub fn concrete_shape(&self, symbolic: usize) -> Vec<usize> {
        self.shape
            .iter()
            .map(|d| d.fixed().unwrap_or(symbolic))
            .collect()
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[", self.name, self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Feature-extraction settings the model was trained with; the plugin must analyse audio with
/// exactly these or the model sees out-of-distribution input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Lowest f0 the pitch tracker searches, Hz.
    pub f0_min_hz: f32,
    /// Highest f0 the pitch tracker searches, Hz.
    pub f0_max_hz: f32,
    /// Loudness mapped to 0.0 by the normalisation, dB.
    pub loudness_min_db: f32,
    /// Loudness mapped to 1.0 by the normalisation, dB.
    pub loudness_max_db: f32,
    /// Mean loudness of the training audio's voiced frames, dB
    /// (`crate::style::features::mean_level_db`): the level Continuo Style's Auto Level brings
    /// a player to. Absent in models trained before it was recorded (Auto Level is then off;
    /// `continuo-train reference-level` adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness_reference_db: Option<f32>,
}

/// The harmonic-plus-noise synthesizer a timbre model drives (`dsp::synth`): the widths of
/// the model's `harmonics` and `noise` outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    /// Number of harmonics in the harmonic distribution.
    pub harmonics: u32,
    /// Number of filtered-noise bands.
    pub noise_bands: u32,
    /// Band spacing: `"linear"` or `"mel"`.
    pub noise_band_spacing: String,
    /// Top of the band the model was trained to fill, Hz: harmonics at or above it are
    /// silent and the noise bands are spread over `0..=max_hz`. The plugin synthesises at the
    /// host's rate, so a 48 kHz-trained model fills the band up to 24 kHz while a v1 model
    /// (8 kHz) keeps the band it was trained on.
    pub max_hz: f32,
}

/// Highest `synth.max_hz` a manifest may declare (the Nyquist frequency of 192 kHz audio).
pub const MAX_SYNTH_BAND_HZ: f32 = 96_000.0;

/// Token vocabulary a continuation model was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VocabularyInfo {
    /// Tokenizer vocabulary version string (must equal the library tokenizer's).
    pub version: String,
    /// Number of tokens (the logits width).
    pub size: u32,
}

/// The model manifest (`models/<name>.json`). See the crate's design notes, "The model contract".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Contract version this manifest follows ([`CONTRACT_VERSION`] when written by this build).
    pub contract_version: u32,
    /// Display name.
    pub name: String,
    /// What the model does.
    pub kind: ModelKind,
    /// What the model is and learned from, in one line a musician reads (its card); shown by
    /// `continuo models` and in the plugins' status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Audio sample rate the features were computed at, Hz (timbre models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Analysis hop, samples (timbre models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_size: Option<u32>,
    /// Model frame rate, Hz (timbre models; sample_rate / hop_size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate_hz: Option<f32>,
    /// Feature-extraction settings (timbre models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureConfig>,
    /// Token vocabulary (continuation models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<VocabularyInfo>,
    /// Synthesizer configuration (timbre models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<SynthSpec>,
    /// ONNX file name relative to the manifest's directory; default `<manifest stem>.onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_file: Option<String>,
    /// Model inputs, in the ONNX graph's order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs, in the ONNX graph's order.
    pub outputs: Vec<TensorSpec>,
    /// Latency the model itself adds (look-ahead), samples; added to the analysis latency.
    pub latency_samples: u32,
    /// Number of trained parameters (for display and sanity checks).
    pub parameter_count: u64,
    /// Free-form training-data summary written by the trainer (corpus, split, seed, steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// Evaluation metrics by name (e.g. `"perplexity"`, `"spectral_distance"`).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Lower-case hex sha256 of the ONNX file.
    pub onnx_sha256: String,
}

impl Manifest {
    /// Reads, version-checks, migrates and parses a manifest file.
    ///
    /// # Errors
    /// [`ModelError::ManifestMissing`], [`ModelError::Io`], [`ModelError::ManifestParse`],
    /// [`ModelError::UnsupportedContractVersion`] or [`ModelError::ManifestInvalid`], each naming
    /// `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest> {
        let path = path.as_ref();
        let bytes = read_capped(path, MAX_MANIFEST_BYTES)
            .map_err(|e| ModelError::from_manifest_io(path.to_path_buf(), e))?
            .map_err(|size| ModelError::FileTooLarge {
                path: path.to_path_buf(),
                size,
                max: MAX_MANIFEST_BYTES,
            })?;
        let text = String::from_utf8(bytes).map_err(|e| ModelError::ManifestParse {
            path: path.to_path_buf(),
            reason: format!("not UTF-8 text: {e}"),
        })?;
        Manifest::from_json_str(&text, path)
    }

    /// Parses manifest JSON; `path` is only used in error messages.
    ///
    /// # Errors
    /// As [`Manifest::load`], without the I/O cases.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Manifest> {
        let parse_err = |reason: String| ModelError::ManifestParse {
            path: path.to_path_buf(),
            reason,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let version = match value.get("contract_version") {
            None => return Err(parse_err("missing field `contract_version`".into())),
            Some(v) => v
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    parse_err(format!(
                        "`contract_version` must be an unsigned integer, got {v}"
                    ))
                })?,
        };
        if version > CONTRACT_VERSION {
            return Err(ModelError::UnsupportedContractVersion {
                path: path.to_path_buf(),
                found: version,
                min_supported: MIN_CONTRACT_VERSION,
                supported: CONTRACT_VERSION,
                hint: "the model was made by a newer Continuo; update the plugin",
            });
        }
        if version < MIN_CONTRACT_VERSION {
            return Err(ModelError::UnsupportedContractVersion {
                path: path.to_path_buf(),
                found: version,
                min_supported: MIN_CONTRACT_VERSION,
                supported: CONTRACT_VERSION,
                hint: "the model is too old to migrate; re-export it with the current trainer",
            });
        }
        if version < CONTRACT_VERSION {
            value = migrate(value, version).map_err(|reason| ModelError::ManifestInvalid {
                path: path.to_path_buf(),
                reason: format!("migration from contract version {version} failed: {reason}"),
            })?;
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| parse_err(e.to_string()))?;
        manifest
            .validate()
            .map_err(|reason| ModelError::ManifestInvalid {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(manifest)
    }

    /// Writes the manifest as pretty JSON (what the trainer does after exporting the ONNX file).
    ///
    /// # Errors
    /// [`ModelError::Io`] naming `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut text = serde_json::to_string_pretty(self).expect("manifest serialises to JSON");
        text.push('\n');
        std::fs::write(path, text).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Path of the ONNX file this manifest describes: `onnx_file` relative to the manifest's
    /// directory, or the manifest's path with the extension `.onnx`.
    pub fn onnx_path(&self, manifest_path: &Path) -> PathBuf {
        match &self.onnx_file {
            Some(file) => manifest_path.parent().unwrap_or(Path::new("")).join(file),
            None => manifest_path.with_extension("onnx"),
        }
    }

    /// Checks the contract rules serde cannot express, and every count against its cap (before
    /// anything is sized by it).
    fn validate(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self.inputs.is_empty() {
            return Err("`inputs` is empty".into());
        }
        if self.outputs.is_empty() {
            return Err("`outputs` is empty".into());
        }
        if self.inputs.len() + self.outputs.len() > MAX_TENSORS {
            return Err(format!(
                "{} inputs and outputs; the contract allows at most {MAX_TENSORS}",
                self.inputs.len() + self.outputs.len()
            ));
        }
        for (list, specs) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (i, spec) in specs.iter().enumerate() {
                spec.check_size()
                    .map_err(|why| format!("`{list}[{i}]` (`{}`): {why}", spec.name))?;
            }
        }
        if let Some(synth) = &self.synth {
            for (field, count) in [
                ("synth.harmonics", synth.harmonics),
                ("synth.noise_bands", synth.noise_bands),
            ] {
                check_dim(field, count as usize)?;
            }
            if !(synth.max_hz.is_finite()
                && synth.max_hz > 0.0
                && synth.max_hz <= MAX_SYNTH_BAND_HZ)
            {
                return Err(format!(
                    "`synth.max_hz` is {}; it must be in (0, {MAX_SYNTH_BAND_HZ}] Hz",
                    synth.max_hz
                ));
            }
        }
        if let Some(features) = &self.features {
            if let Some(level) = features.loudness_reference_db {
                let (min, max) = (features.loudness_min_db, features.loudness_max_db);
                if !(level.is_finite() && level >= min && level <= max) {
                    return Err(format!(
                        "`features.loudness_reference_db` is {level}; it must lie in the loudness range [{min}, {max}] dB"
                    ));
                }
            }
        }
        if let Some(vocabulary) = &self.vocabulary {
            check_dim("vocabulary.size", vocabulary.size as usize)?;
        }
        let hex = self.onnx_sha256.len() == 64
            && self
                .onnx_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(format!(
                "`onnx_sha256` must be 64 lower-case hex digits, got {:?}",
                self.onnx_sha256
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for spec in self.inputs.iter().chain(&self.outputs) {
            if !names.insert(spec.name.as_str()) {
                return Err(format!("tensor name `{}` is used twice", spec.name));
            }
        }
        if self.kind == ModelKind::Continuation && self.vocabulary.is_none() {
            return Err("a continuation model needs `vocabulary`".into());
        }
        Ok(())
    }
}

/// Refuses a count above [`MAX_FIXED_DIM`], naming the field.
fn check_dim(field: &str, size: usize) -> std::result::Result<(), String> {
    if size > MAX_FIXED_DIM {
        return Err(format!(
            "`{field}` is {size}; the contract allows at most {MAX_FIXED_DIM}"
        ));
    }
    Ok(())
}

/// v1 → v2: a timbre model's synthesis band is its analysis rate's Nyquist frequency (every
/// v1 model was trained with the synthesiser running at `sample_rate`).
fn v1_to_v2(mut value: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    let sample_rate = value.get("sample_rate").and_then(serde_json::Value::as_f64);
    if let Some(synth) = value.get_mut("synth").and_then(|s| s.as_object_mut()) {
        if !synth.contains_key("max_hz") {
            let rate = sample_rate
                .ok_or("a v1 timbre manifest needs `sample_rate` to know its synthesis band")?;
            synth.insert("max_hz".into(), (rate / 2.0).into());
        }
    }
    Ok(value)
}

/// Reads a whole file of at most `max` bytes: `Ok(Err(size))` when it is larger (checked on
/// the open file before reading, and again while reading in case it grows).
pub(crate) fn read_capped(
    path: &Path,
    max: u64,
) -> std::io::Result<std::result::Result<Vec<u8>, u64>> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Err(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// Brings a manifest written for contract `from` (older than [`CONTRACT_VERSION`]) up to the
/// current contract, one version at a time, on the raw JSON.
///
/// Each contract change adds one step here (rename fields, fill defaults) instead of breaking
/// every shipped model.
pub fn migrate(
    mut value: serde_json::Value,
    from: u32,
) -> std::result::Result<serde_json::Value, String> {
    for version in from..CONTRACT_VERSION {
        match version {
            1 => value = v1_to_v2(value)?,
            v => return Err(format!("no migration step from contract version {v}")),
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("contract_version".into(), CONTRACT_VERSION.into());
    }
    Ok(value)
}

/// Lower-case hex sha256 of a file's content, read in chunks (models can be tens of MB).
///
/// # Errors
/// The I/O error of opening or reading the file.
pub fn sha256_file(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex sha256 of a byte slice (for the trainer, which has the bytes in memory).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            contract_version: CONTRACT_VERSION,
            name: "violin".into(),
            kind: ModelKind::Timbre,
            description: None,
            sample_rate: Some(48_000),
            hop_size: Some(480),
            frame_rate_hz: Some(100.0),
            features: Some(FeatureConfig {
                f0_min_hz: 50.0,
                f0_max_hz: 2000.0,
                loudness_min_db: -80.0,
                loudness_max_db: 0.0,
                loudness_reference_db: None,
            }),
            vocabulary: None,
            synth: None,
            onnx_file: None,
            inputs: vec![TensorSpec::new(
                "features",
                Dtype::F32,
                [1.into(), "T".into(), 2.into()],
            )],
            outputs: vec![TensorSpec::new(
                "controls",
                Dtype::F32,
                [1.into(), "T".into(), 49.into()],
            )],
            latency_samples: 480,
            parameter_count: 123_456,
            training: Some(serde_json::json!({"corpus": "bach", "steps": 1000})),
            metrics: [("spectral_distance".to_string(), 0.5)]
                .into_iter()
                .collect(),
            onnx_sha256: "0".repeat(64),
        }
    }

    #[test]
    fn round_trip_and_dim_forms() {
        let m = sample();
        let text = serde_json::to_string(&m).unwrap();
        // Untagged dims: numbers stay numbers, names stay strings.
        assert!(text.contains(r#""shape":[1,"T",2]"#), "{text}");
        assert!(text.contains(r#""kind":"timbre""#));
        assert!(text.contains(r#""dtype":"f32""#));
        let back = Manifest::from_json_str(&text, Path::new("m.json")).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn future_version_refused_and_older_version_refused_without_migrator() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["contract_version"] = 99.into();
        let err = Manifest::from_json_str(&v.to_string(), Path::new("x.json")).unwrap_err();
        assert!(matches!(
            err,
            ModelError::UnsupportedContractVersion {
                found: 99,
                supported: CONTRACT_VERSION,
                ..
            }
        ));
        v["contract_version"] = 0.into();
        let err = Manifest::from_json_str(&v.to_string(), Path::new("x.json")).unwrap_err();
        assert!(
            matches!(err, ModelError::UnsupportedContractVersion { found: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn validation_rules() {
        let mut m = sample();
        m.onnx_sha256 = "ABC".into();
        let err = Manifest::from_json_str(&serde_json::to_string(&m).unwrap(), Path::new("x.json"))
            .unwrap_err();
        assert!(matches!(err, ModelError::ManifestInvalid { .. }), "{err}");
        let mut m = sample();
        m.kind = ModelKind::Continuation;
        let err = Manifest::from_json_str(&serde_json::to_string(&m).unwrap(), Path::new("x.json"))
            .unwrap_err();
        assert!(err.to_string().contains("vocabulary"), "{err}");
    }

    #[test]
    fn counts_above_their_caps_are_refused_naming_the_field() {
        // Each dim within MAX_FIXED_DIM, their product far above MAX_TENSOR_ELEMENTS: what a
        // warm-up or a caller's state buffer would have allocated.
        let mut m = sample();
        m.inputs[0].shape = vec![Dim::Fixed(MAX_FIXED_DIM), Dim::Fixed(MAX_FIXED_DIM)];
        let err = Manifest::from_json_str(&serde_json::to_string(&m).unwrap(), Path::new("x.json"))
            .unwrap_err();
        assert!(matches!(err, ModelError::ManifestInvalid { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("x.json") && text.contains("`inputs[0]` (`features`)"),
            "{text}"
        );
        assert!(text.contains("more than 4194304 elements"), "{text}");

        let mut m = sample();
        m.vocabulary = Some(VocabularyInfo {
            version: "v".into(),
            size: u32::MAX,
        });
        let err = Manifest::from_json_str(&serde_json::to_string(&m).unwrap(), Path::new("x.json"))
            .unwrap_err();
        assert!(
            err.to_string().contains("`vocabulary.size` is 4294967295"),
            "{err}"
        );
    }

    #[test]
    fn v1_timbre_manifest_migrates_to_its_own_band_and_absurd_bands_are_refused() {
        let mut m = sample();
        m.sample_rate = Some(16_000);
        m.synth = Some(SynthSpec {
            harmonics: 32,
            noise_bands: 32,
            noise_band_spacing: "linear".into(),
            max_hz: 0.0,
        });
        let mut v1 = serde_json::to_value(&m).unwrap();
        v1["contract_version"] = 1.into();
        v1["synth"].as_object_mut().unwrap().remove("max_hz");
        let back = Manifest::from_json_str(&v1.to_string(), Path::new("old.json")).unwrap();
        assert_eq!(back.contract_version, CONTRACT_VERSION);
        assert_eq!(back.synth.unwrap().max_hz, 8_000.0);
        // Without a sample rate a v1 band cannot be known: refused, naming the file.
        v1.as_object_mut().unwrap().remove("sample_rate");
        let err = Manifest::from_json_str(&v1.to_string(), Path::new("old.json")).unwrap_err();
        assert!(err.to_string().contains("old.json"), "{err}");
        assert!(err.to_string().contains("sample_rate"), "{err}");
        for band in [0.0, -1.0, 1e9] {
            m.synth.as_mut().unwrap().max_hz = band;
            let text = serde_json::to_string(&m).unwrap();
            let err = Manifest::from_json_str(&text, Path::new("x.json")).unwrap_err();
            assert!(err.to_string().contains("synth.max_hz"), "{band}: {err}");
        }
    }

    #[test]
    fn a_reference_level_outside_the_loudness_range_is_refused() {
        let mut m = sample();
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            !text.contains("loudness_reference_db"),
            "absent stays absent"
        );
        m.features.as_mut().unwrap().loudness_reference_db = Some(-31.5);
        let text = serde_json::to_string(&m).unwrap();
        let back = Manifest::from_json_str(&text, Path::new("x.json")).unwrap();
        assert_eq!(back, m);
        for level in [f32::NAN, 3.0, -200.0] {
            m.features.as_mut().unwrap().loudness_reference_db = Some(level);
            let mut v = serde_json::to_value(&m).unwrap();
            // NaN is not JSON: write it as a string the parser refuses, like a hand-edited file.
            if level.is_nan() {
                v["features"]["loudness_reference_db"] = "NaN".into();
            }
            let err = Manifest::from_json_str(&v.to_string(), Path::new("x.json")).unwrap_err();
            assert!(err.to_string().contains("x.json"), "{level}: {err}");
            if !level.is_nan() {
                assert!(
                    err.to_string().contains("loudness_reference_db"),
                    "{level}: {err}"
                );
            }
        }
    }

    #[test]
    fn onnx_path_rules() {
        let mut m = sample();
        assert_eq!(
            m.onnx_path(Path::new("/m/violin.json")),
            Path::new("/m/violin.onnx")
        );
        m.onnx_file = Some("weights/v.onnx".into());
        assert_eq!(
            m.onnx_path(Path::new("/m/violin.json")),
            Path::new("/m/weights/v.onnx")
        );
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
