//! A loaded timbre model: the ONNX decoder behind its manifest, with its streaming state.
//!
//! The I/O contract (written by `continuo-train timbre`, checked here on load):
//! `features` f32 `[1, T, 2]`, `h0` f32 `[1, 1, H]` → `amplitude` `[1, T, 1]`,
//! `harmonics` `[1, T, N]`, `noise` `[1, T, M]`, `h_n` `[1, 1, H]`; features at 16 kHz, hop 64;
//! the controls fill the band `synth.max_hz` (rendered at the host's rate, see
//! [`super::render`]).
//! The plugin calls it with `T = 1` per hop; offline callers may pass longer chunks — the
//! carried state makes both give the same controls. The state belongs to the caller (a
//! [`DecoderState`]), so one loaded model can play several independent lines (the Voice
//! instrument runs one per note).

use std::path::PathBuf;

use crate::dsp::synth::{NoiseBandSpacing, MAX_BAND_HZ, MAX_HARMONICS, MAX_NOISE_BANDS};
use crate::model::{
    chain_message, load_model, BackendChoice, FeatureConfig, LoadedModel, Manifest, ModelDirs,
    ModelKind, Session, TensorView,
};

use super::features::{is_valid_f0_floor, F0_FLOOR_LIMIT_HZ, F0_MAX_HZ, HOP_SIZE, SAMPLE_RATE_HZ};
use super::StyleError;

/// Synthesiser controls for a run of frames, frame-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlFrames {
    /// Harmonic amplitude per frame (linear).
    pub amplitude: Vec<f32>,
    /// `N` harmonic weights per frame.
    pub harmonics: Vec<f32>,
    /// `M` noise band gains per frame.
    pub noise: Vec<f32>,
}

/// The band a model's controls describe: what the synthesiser needs besides the widths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthBand {
    /// Top of the band, Hz (`synth.max_hz`).
    pub max_hz: f32,
    /// Noise band spacing.
    pub spacing: NoiseBandSpacing,
}

/// A timbre model ready to run; see the [module docs](self).
pub struct TimbreModel {
    session: Session,
    manifest: Manifest,
    manifest_path: PathBuf,
    features: FeatureConfig,
    harmonics: usize,
    noise_bands: usize,
    band: SynthBand,
    /// Width of the GRU state (`h0` in, `h_n` out).
    state_width: usize,
}

impl std::fmt::Debug for TimbreModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimbreModel")
            .field("name", &self.manifest.name)
            .field("path", &self.manifest_path)
            .finish_non_exhaustive()
    }
}

impl TimbreModel {
    /// Finds (see [`ModelDirs::resolve`]) and loads a timbre model.
    ///
    /// # Errors
    /// Not found, any load error (corrupt, wrong kind, …), or a manifest this runtime cannot
    /// drive (see [`TimbreModel::new`]).
    pub fn load(
        name_or_path: &str,
        dirs: &ModelDirs,
        backend: BackendChoice,
    ) -> Result<Self, StyleError> {
        let path = dirs
            .resolve(name_or_path)
            .ok_or_else(|| StyleError::NotFound {
                name: name_or_path.to_owned(),
                searched: dirs.describe(),
            })?;
        let loaded = load_model(&path, ModelKind::Timbre, backend)?;
        Self::new(loaded)
    }

    /// Wraps a loaded model after checking it fits the runtime: 16 kHz, hop 64, `features`
    /// and `synth` sections present, synth sizes within the synthesiser's caps
    /// ([`MAX_HARMONICS`], [`MAX_NOISE_BANDS`]) and equal to the output widths, a fixed state
    /// width, and a trial run through [`TimbreModel::run`] (the call every hop makes) that
    /// succeeds. A model that would fail on every hop is refused here, by name and reason.
    ///
    /// # Errors
    /// [`StyleError::Unsupported`] naming the manifest and the mismatch.
    pub fn new(loaded: LoadedModel) -> Result<Self, StyleError> {
        let LoadedModel {
            manifest,
            session,
            paths,
            ..
        } = loaded;
        let unsupported = |reason: String| StyleError::Unsupported {
            path: paths.manifest.clone(),
            reason,
        };
        if manifest.sample_rate != Some(SAMPLE_RATE_HZ)
            || manifest.hop_size != Some(HOP_SIZE as u32)
        {
            return Err(unsupported(format!(
                "runs at {:?} Hz / hop {:?}; Continuo Style runs timbre models at {SAMPLE_RATE_HZ} Hz / hop {HOP_SIZE}",
                manifest.sample_rate, manifest.hop_size
            )));
        }
        let features = manifest
            .features
            .clone()
            .ok_or_else(|| unsupported("no `features` section".into()))?;
        let synth = manifest
            .synth
            .clone()
            .ok_or_else(|| unsupported("no `synth` section".into()))?;
        // The analysis is built from this floor (its look-ahead is two periods of it): an
        // absurd one must not size the pitch tracker.
        if !is_valid_f0_floor(features.f0_min_hz) {
            return Err(unsupported(format!(
                "`features.f0_min_hz` is {}; Continuo Style tracks f0 from {F0_FLOOR_LIMIT_HZ} Hz \
                 to {} Hz",
                features.f0_min_hz,
                F0_MAX_HZ / 2.0
            )));
        }
        let spacing = match synth.noise_band_spacing.as_str() {
            "linear" => NoiseBandSpacing::Linear,
            "mel" => NoiseBandSpacing::Mel,
            other => {
                return Err(unsupported(format!(
                    "`synth.noise_band_spacing` is {other:?}; expected \"linear\" or \"mel\""
                )))
            }
        };
        // The manifest loader already refused a band outside (0, MAX_SYNTH_BAND_HZ]; the
        // synthesiser's own cap is checked here so the two can never drift apart silently.
        if !(synth.max_hz > 0.0 && synth.max_hz <= MAX_BAND_HZ) {
            return Err(unsupported(format!(
                "`synth.max_hz` is {}; the synthesiser renders bands up to {MAX_BAND_HZ} Hz",
                synth.max_hz
            )));
        }
        let band = SynthBand {
            max_hz: synth.max_hz,
            spacing,
        };
        // Checked before anything is sized by them: a hostile count must not allocate.
        let (harmonics, noise_bands) = (synth.harmonics as usize, synth.noise_bands as usize);
        for (field, count, max) in [
            ("synth.harmonics", harmonics, MAX_HARMONICS),
            ("synth.noise_bands", noise_bands, MAX_NOISE_BANDS),
        ] {
            if count > max {
                return Err(unsupported(format!(
                    "`{field}` is {count}; the synthesiser renders at most {max}"
                )));
            }
        }
        if manifest.inputs.len() != 2 || manifest.outputs.len() != 4 {
            return Err(unsupported(
                "expected inputs (features, h0) and outputs (amplitude, harmonics, noise, h_n)"
                    .into(),
            ));
        }
        // The manifest's loader capped every fixed dim (`MAX_FIXED_DIM`), so this width is
        // safe to allocate.
        let hidden = manifest.inputs[1]
            .shape
            .get(2)
            .and_then(|d| d.fixed())
            .ok_or_else(|| unsupported("input `h0` needs a fixed width [1, 1, H]".into()))?;
        for (output, field, want) in [
            (1, "synth.harmonics", harmonics),
            (2, "synth.noise_bands", noise_bands),
            (3, "the `h0` width", hidden),
        ] {
            let spec = &manifest.outputs[output];
            if let Some(width) = spec.shape.get(2).and_then(|d| d.fixed()) {
                if width != want {
                    return Err(unsupported(format!(
                        "output `{}` is {width} wide but {field} is {want}",
                        spec.name
                    )));
                }
            }
        }
        let mut model = Self {
            session,
            manifest,
            manifest_path: paths.manifest.clone(),
            features,
            harmonics,
            noise_bands,
            band,
            state_width: hidden,
        };
        let mut trial = ControlFrames::default();
        let mut state = vec![0.0; hidden];
        if let Err(error) = model.run(&[[0.0; 2]], &mut state, &mut trial) {
            return Err(unsupported(format!(
                "a trial run failed: {}",
                chain_message(&error)
            )));
        }
        Ok(model)
    }

    /// Model name (from the manifest).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The feature normalisation the model was trained with.
    pub fn feature_config(&self) -> &FeatureConfig {
        &self.features
    }

    /// `N`: harmonic weights per frame.
    pub fn harmonics(&self) -> usize {
        self.harmonics
    }

    /// `M`: noise bands per frame.
    pub fn noise_bands(&self) -> usize {
        self.noise_bands
    }

    /// The band the controls fill and how the noise bands are spread over it.
    pub fn band(&self) -> SynthBand {
        self.band
    }

    /// Where the manifest was read from (for messages).
    pub fn manifest_path(&self) -> &std::path::Path {
        &self.manifest_path
    }

    /// A state at time zero for one line played by this model.
    pub fn new_state(&self) -> Vec<f32> {
        vec![0.0; self.state_width]
    }

    /// Runs `features` (`[f0_norm, loudness_norm]` per frame) and appends their controls to
    /// `out`, carrying `state` (from [`TimbreModel::new_state`]; zero it at a discontinuity).
    /// Non-finite outputs become 0.
    ///
    /// # Errors
    /// The session fails, its outputs do not have the declared sizes, or `state` is not this
    /// model's.
    pub fn run(
        &mut self,
        features: &[[f32; 2]],
        state: &mut [f32],
        out: &mut ControlFrames,
    ) -> Result<(), StyleError> {
        if state.len() != self.state_width {
            return Err(StyleError::Unsupported {
                path: self.manifest_path.clone(),
                reason: format!(
                    "state of width {} passed, the model's is {}",
                    state.len(),
                    self.state_width
                ),
            });
        }
        let frames = features.len();
        if frames == 0 {
            return Ok(());
        }
        let flat: &[f32] = features.as_flattened();
        let shape_x = [1, frames, 2];
        let shape_h = [1, 1, self.state_width];
        let outputs = self.session.run(&[
            TensorView::f32(&shape_x, flat),
            TensorView::f32(&shape_h, state),
        ])?;
        let expected = [
            frames,
            frames * self.harmonics,
            frames * self.noise_bands,
            self.state_width,
        ];
        let mut slices = [&[][..]; 4];
        for (i, (slot, want)) in slices.iter_mut().zip(expected).enumerate() {
            *slot = outputs
                .get(i)
                .and_then(|t| t.as_f32())
                .filter(|s| s.len() == want)
                .ok_or_else(|| StyleError::Unsupported {
                    path: self.manifest_path.clone(),
                    reason: format!("output {i} is not f32 with {want} values"),
                })?;
        }
        let finite = |x: &f32| if x.is_finite() { *x } else { 0.0 };
        out.amplitude.extend(slices[0].iter().map(finite));
        out.harmonics.extend(slices[1].iter().map(finite));
        out.noise.extend(slices[2].iter().map(finite));
        for (s, &h) in state.iter_mut().zip(slices[3]) {
            *s = if h.is_finite() { h } else { 0.0 };
        }
        Ok(())
    }
}
