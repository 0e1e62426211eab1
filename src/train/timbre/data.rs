//! Training data: a folder of WAV files → mono audio at the synthesis rate (the target) plus
//! per-frame features computed by `crate::dsp` at 16 kHz (the plugin's own analysis), a
//! deterministic split by file, and random training windows.
//!
//! Bad files (unreadable, empty, too short, failing analysis) are skipped and listed in
//! [`LoadedFolder::skipped`] with the reason; loading fails only when nothing usable is left.

use std::path::{Path, PathBuf};

use crate::dsp::analysis::analyze;
use crate::dsp::resample::StreamingResampler;
use crate::model::FeatureConfig;
use anyhow::{bail, ensure, Context, Result};

use super::{timbre_analysis_config, FeatureNormalizer, FRAME_RATE_HZ, SAMPLE_RATE_HZ};

/// One audio file, analysed.
#[derive(Debug, Clone)]
pub struct Clip {
    /// File name (no directory), used for the split and in reports.
    pub name: String,
    /// Rate of `audio`, Hz.
    pub sample_rate: u32,
    /// Mono audio at `sample_rate`.
    pub audio: Vec<f32>,
    /// Model inputs per frame: `[f0_norm, loudness_norm]`.
    pub features: Vec<[f32; 2]>,
    /// Held f0 per frame, Hz (what drives the synthesiser).
    pub f0_hz: Vec<f32>,
    /// Raw analysis f0 per frame, Hz.
    pub raw_f0_hz: Vec<f32>,
    /// Voicing decision per frame.
    pub voiced: Vec<bool>,
    /// Loudness per frame, dB.
    pub loudness_db: Vec<f32>,
}

/// The mean level of the voiced frames of `clips` (`crate::style::features::mean_level_db`):
/// a model's `loudness_reference_db`.
pub fn training_level_db(clips: &[&Clip]) -> Option<f32> {
    crate::style::features::mean_level_db(clips.iter().flat_map(|clip| {
        clip.voiced
            .iter()
            .zip(&clip.loudness_db)
            .map(|(&voiced, &loudness)| (if voiced { 1.0 } else { 0.0 }, loudness))
    }))
}

/// Measures the training level of the timbre model `manifest_path` on its data folder
/// `data_dir` (the files its manifest lists as held out are left out, as in training) and
/// writes it into the manifest as `features.loudness_reference_db`, keeping everything else
/// as written (a v1 manifest stays v1). For models trained before the trainer recorded it.
/// Returns the level and the number of files measured.
///
/// # Errors
/// The manifest cannot be read, parsed or written, is not a timbre manifest, or no file of
/// `data_dir` is usable.
pub fn write_reference_level(manifest_path: &Path, data_dir: &Path) -> Result<(f32, usize)> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = crate::model::Manifest::from_json_str(&text, manifest_path)?;
    let features = manifest
        .features
        .with_context(|| format!("{}: not a timbre manifest", manifest_path.display()))?;
    let heldout: Vec<String> = manifest
        .training
        .as_ref()
        .and_then(|t| t.get("heldout_names"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let loaded = load_folder(data_dir, &features, SAMPLE_RATE_HZ, |_| {})?;
    let train: Vec<&Clip> = loaded
        .clips
        .iter()
        .filter(|clip| !heldout.contains(&clip.name))
        .collect();
    let level = training_level_db(&train).with_context(|| {
        format!(
            "{}: no voiced frame above {} dB in the training files",
            data_dir.display(),
            crate::style::features::LEVEL_FLOOR_DB
        )
    })?;
    let text = with_reference_level(&text, level).with_context(|| {
        format!(
            "{}: no `\"features\": {{ … }}` block as the trainer writes it",
            manifest_path.display()
        )
    })?;
    // Written only if it still loads and says what was measured.
    let written = crate::model::Manifest::from_json_str(&text, manifest_path)?;
    ensure!(
        written.features.and_then(|f| f.loudness_reference_db) == Some(level),
        "{}: the level did not land in `features`",
        manifest_path.display()
    );
    std::fs::write(manifest_path, text)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    Ok((level, train.len()))
}

/// `manifest_text` (pretty JSON as the trainer writes it) with `loudness_reference_db` set in
/// its `features` block: the rest of the file stays byte for byte (key order, a v1 contract).
fn with_reference_level(manifest_text: &str, level: f32) -> Option<String> {
    const KEY: &str = "\"loudness_reference_db\"";
    let open = manifest_text.find("\n  \"features\": {")?;
    let close = open + manifest_text[open..].find("\n  }")?;
    let block = &manifest_text[open..close];
    let line = format!("{KEY}: {}", serde_json::to_string(&level).ok()?);
    let block = match block.find(KEY) {
        Some(at) => {
            let end = block[at..]
                .find(['\n', ','])
                .map_or(block.len(), |e| at + e);
            format!("{}{line}{}", &block[..at], &block[end..])
        }
        None => format!("{block},\n    {line}"),
    };
    Some(format!(
        "{}{block}{}",
        &manifest_text[..open],
        &manifest_text[close..]
    ))
}

impl Clip {
    /// Number of frames (`len / hop + 1`).
    pub fn frames(&self) -> usize {
        self.features.len()
    }

    /// First sample of frame `frame` in `audio` (frames are 4 ms apart at any rate).
    pub fn frame_start(&self, frame: usize) -> usize {
        (frame as u64 * u64::from(self.sample_rate) / FRAME_RATE_HZ as u64) as usize
    }
}

/// A file that was not used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// Result of [`load_folder`].
#[derive(Debug, Clone)]
pub struct LoadedFolder {
    /// Usable clips, sorted by file name.
    pub clips: Vec<Clip>,
    /// Files skipped, with the reason.
    pub skipped: Vec<SkippedFile>,
}

/// Reads a WAV file as mono at `rate` Hz (channels averaged, resampled when needed). A file
/// recorded below `rate` is refused: up-sampled audio has nothing above its own Nyquist
/// frequency, and a model trained on it would learn that its upper band is silent.
///
/// # Errors
/// Unreadable file, unsupported format, no audio, a rate below `rate`, resampler failure;
/// each names the file.
pub fn read_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    let audio = crate::wav::read(path)?;
    if audio.sample_rate < rate && rate > SAMPLE_RATE_HZ {
        bail!(
            "{}: recorded at {} Hz, below the {rate} Hz needed here: its band stops at {} Hz \
             (record or render it at {rate} Hz; a 16 kHz model trains with --synth-rate {})",
            path.display(),
            audio.sample_rate,
            audio.sample_rate / 2,
            SAMPLE_RATE_HZ
        );
    }
    resampled(audio.mono(), audio.sample_rate, rate)
        .map_err(|e| anyhow::anyhow!("{}: cannot resample: {e}", path.display()))
}

fn resampled(mono: Vec<f32>, from: u32, to: u32) -> Result<Vec<f32>, crate::dsp::DspError> {
    if from == to {
        return Ok(mono);
    }
    StreamingResampler::resample(&mono, from, to)
}

/// Analyses mono audio at `rate` Hz into a [`Clip`] with the contract's analysis (at 16 kHz)
/// and normalisation.
///
/// # Errors
/// When the audio cannot be resampled to 16 kHz or the analysis rejects its configuration.
pub fn analyse_clip(
    name: &str,
    audio: Vec<f32>,
    rate: u32,
    features: &FeatureConfig,
) -> Result<Clip> {
    let audio_16k = resampled(audio.clone(), rate, SAMPLE_RATE_HZ)
        .map_err(|e| anyhow::anyhow!("{name}: cannot resample to 16 kHz: {e}"))?;
    let analysis = analyze(
        &audio_16k,
        SAMPLE_RATE_HZ as f32,
        &timbre_analysis_config(features.f0_min_hz),
    )
    .map_err(|e| anyhow::anyhow!("{name}: analysis failed: {e}"))?;
    let mut normalizer = FeatureNormalizer::new(features.clone());
    let n = analysis.frames.len();
    let mut clip = Clip {
        name: name.to_owned(),
        sample_rate: rate,
        audio,
        features: Vec::with_capacity(n),
        f0_hz: Vec::with_capacity(n),
        raw_f0_hz: Vec::with_capacity(n),
        voiced: Vec::with_capacity(n),
        loudness_db: Vec::with_capacity(n),
    };
    for frame in &analysis.frames {
        let (x, f0) = normalizer.push(frame);
        clip.features.push(x);
        clip.f0_hz.push(f0);
        clip.raw_f0_hz.push(frame.f0_hz);
        clip.voiced.push(frame.voicing >= 0.5);
        clip.loudness_db.push(frame.loudness_db);
    }
    Ok(clip)
}

/// WAV files directly in `dir` (not recursive), sorted by name.
///
/// # Errors
/// When the folder cannot be listed.
pub fn wav_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")))
        .collect();
    files.sort();
    Ok(files)
}

/// Minimum clip length, seconds (shorter files cannot fill a training window).
pub const MIN_CLIP_SECONDS: f32 = 1.0;

/// Loads every WAV in `dir` at `rate` Hz and analyses it; `on_file` is called after each file
/// (progress).
///
/// # Errors
/// When the folder cannot be listed or no file is usable (the reasons are listed).
pub fn load_folder(
    dir: &Path,
    features: &FeatureConfig,
    rate: u32,
    mut on_file: impl FnMut(&Path),
) -> Result<LoadedFolder> {
    let files = wav_files(dir)?;
    if files.is_empty() {
        bail!("{}: no .wav files found", dir.display());
    }
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = read_mono(&path, rate).and_then(|audio| {
            let seconds = audio.len() as f32 / rate as f32;
            if seconds < MIN_CLIP_SECONDS {
                bail!("too short ({seconds:.2} s; at least {MIN_CLIP_SECONDS} s needed)");
            }
            if audio.iter().all(|&x| x == 0.0) {
                bail!("silent (all samples are 0)");
            }
            analyse_clip(&name, audio, rate, features)
        });
        match result {
            Ok(clip) => clips.push(clip),
            Err(e) => skipped.push(SkippedFile {
                path: path.clone(),
                reason: format!("{e:#}"),
            }),
        }
        on_file(&path);
    }
    if clips.is_empty() {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("  {}: {}", s.path.display(), s.reason))
            .collect();
        bail!(
            "{}: no usable audio file; skipped:\n{}",
            dir.display(),
            reasons.join("\n")
        );
    }
    Ok(LoadedFolder { clips, skipped })
}

/// FNV-1a of a string, for the split (stable across platforms and Rust versions).
fn fnv1a(text: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Deterministic split by file name: a file is held out when its hash falls under
/// `heldout_fraction`. With two or more files at least one is held out and one kept.
/// Returns (train indices, held-out indices).
pub fn split_by_file(
    names: &[String],
    heldout_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let score = |name: &str| (fnv1a(name, seed) % 1_000_000) as f64 / 1_000_000.0;
    let (mut train, mut heldout): (Vec<usize>, Vec<usize>) =
        (0..names.len()).partition(|&i| score(&names[i]) >= heldout_fraction);
    if names.len() >= 2 && heldout_fraction > 0.0 && heldout.is_empty() {
        // Hold out the file with the lowest score.
        let (pos, _) = train
            .iter()
            .enumerate()
            .min_by(|a, b| score(&names[*a.1]).total_cmp(&score(&names[*b.1])))
            .expect("train is not empty");
        heldout.push(train.remove(pos));
    }
    if train.is_empty() && !heldout.is_empty() {
        train.push(heldout.pop().expect("not empty"));
    }
    (train, heldout)
}

pub use crate::train::data::SplitMix;

/// The timbre trainer's generator for `(seed, stream)`: every random draw of a training step
/// derives from `(seed, step)`, so a resumed run repeats exactly.
pub fn timbre_rng(seed: u64, stream: u64) -> SplitMix {
    SplitMix::with_stream_multiplier(seed, stream, 0x9E37_79B9_7F4A_7C15)
}

/// A batch of training windows, flattened row-major, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBatch {
    /// Windows in the batch.
    pub batch: usize,
    /// Frames per window.
    pub frames: usize,
    /// `[B, T, 2]` model inputs.
    pub features: Vec<f32>,
    /// `[B, T]` held f0, Hz.
    pub f0_hz: Vec<f32>,
    /// `[B, T·hop]` target audio, delayed by one hop to match the synthesiser's latency.
    pub target: Vec<f32>,
}

/// Picks `batch` random windows of `frames` frames from `clips` (weighted by length; windows
/// quieter than −60 dB on more than 70 % of their frames are redrawn a few times).
///
/// Frame `i` of a window is the clip's frame `start + i`; the target audio is
/// `audio[(start + i − 1)·hop ..]`, i.e. delayed by one hop, because the synthesiser reaches a
/// frame's values at the end of the hop it is rendered into (latency = one hop).
///
/// # Panics
/// If `clips` is empty or no clip has `frames + 2` frames.
pub fn sample_windows(
    clips: &[&Clip],
    batch: usize,
    frames: usize,
    rng: &mut SplitMix,
) -> WindowBatch {
    let usable: Vec<&Clip> = clips
        .iter()
        .copied()
        .filter(|c| c.frames() >= frames + 2 && c.audio.len() >= c.frame_start(c.frames() - 1))
        .collect();
    assert!(
        !usable.is_empty(),
        "no clip is long enough for {frames}-frame windows"
    );
    let weights: Vec<f64> = usable
        .iter()
        .map(|c| (c.frames() - frames - 1) as f64)
        .collect();
    let total: f64 = weights.iter().sum();
    // Training needs a whole number of samples per frame (checked by the trainer).
    let hop = usable[0].frame_start(1);
    let mut out = WindowBatch {
        batch,
        frames,
        features: Vec::with_capacity(batch * frames * 2),
        f0_hz: Vec::with_capacity(batch * frames),
        target: Vec::with_capacity(batch * frames * hop),
    };
    for _ in 0..batch {
        let (mut clip, mut start) = (usable[0], 1);
        for _attempt in 0..8 {
            let mut pick = rng.unit() * total;
            let mut index = 0;
            while index + 1 < usable.len() && pick >= weights[index] {
                pick -= weights[index];
                index += 1;
            }
            clip = usable[index];
            // Scaled from `unit()` rather than `SplitMix::below` (a modulo): the shipped
            // models' seeds depend on this draw.
            let span = clip.frames() - frames - 1;
            start = 1 + ((rng.unit() * span as f64) as usize).min(span.saturating_sub(1));
            let quiet = clip.loudness_db[start..start + frames]
                .iter()
                .filter(|&&l| l < -60.0)
                .count();
            if (quiet as f32) < 0.7 * frames as f32 {
                break;
            }
        }
        for i in start..start + frames {
            out.features.extend_from_slice(&clip.features[i]);
            out.f0_hz.push(clip.f0_hz[i]);
        }
        let a = clip.frame_start(start - 1);
        for n in a..a + frames * hop {
            out.target.push(clip.audio.get(n).copied().unwrap_or(0.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_level_goes_into_the_features_block_and_nothing_else_moves() {
        let text = "{\n  \"contract_version\": 1,\n  \"features\": {\n    \"f0_min_hz\": 100.0,\n    \"loudness_max_db\": 0.0\n  },\n  \"synth\": {\n    \"harmonics\": 32\n  }\n}\n";
        let once = with_reference_level(text, -31.5).unwrap();
        assert_eq!(
            once,
            text.replace(
                "\"loudness_max_db\": 0.0\n",
                "\"loudness_max_db\": 0.0,\n    \"loudness_reference_db\": -31.5\n"
            )
        );
        // Measured again: replaced, not added twice.
        let twice = with_reference_level(&once, -29.25).unwrap();
        assert_eq!(twice, once.replace("-31.5", "-29.25"));
        assert!(with_reference_level("{\"features\": {}}", -30.0).is_none());
    }

    #[test]
    fn split_is_deterministic_and_non_empty() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i}.wav")).collect();
        let a = split_by_file(&names, 0.2, 1);
        let b = split_by_file(&names, 0.2, 1);
        assert_eq!(a, b);
        assert!(!a.0.is_empty() && !a.1.is_empty());
        assert_eq!(a.0.len() + a.1.len(), 20);
        let two = vec!["a.wav".to_string(), "b.wav".to_string()];
        let (t, h) = split_by_file(&two, 0.1, 3);
        assert_eq!((t.len(), h.len()), (1, 1));
    }
}
