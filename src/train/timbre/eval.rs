//! Paired evaluation of timbre transfer.
//!
//! `paired_dir` holds `source/` and `target/` with WAVs of the same names: the same notes
//! played by the source instrument and by the instrument the model was trained on (sample
//! aligned, e.g. two FluidSynth renders of one MIDI file). Both are read at a host rate (48 kHz
//! by default; 44.1 kHz is the other rate users run), and the source runs through the plugin's
//! own processor ([`crate::style::StyleProcessor`]: down-sampling, streaming analysis, the
//! exported model, synthesis at the host rate, loudness follower) in quality mode with the gate
//! off, so these are the plugin's figures, over the whole band. Figures, all with
//! `crate::dsp::metrics`:
//! - multi-scale spectral distance to the target of: the model output; baseline (a) the
//!   untransformed source; baseline (b) a non-neural additive resynthesis with the training
//!   data's average harmonic profile ([`HarmonicProfile`]), driven by the same f0/loudness;
//! - f0 kept: raw pitch accuracy (50 cents) of the output against the source's f0 on the
//!   source's voiced frames;
//! - loudness kept: mean |loudness(output) − loudness(source)| in dB over all frames with both
//!   curves floored at the model's `loudness_min_db` (and, for information, over voiced frames).
//!
//! The processor's latency is removed before any comparison (the plugin reports it to the host).
//! Pitch and loudness of the output are measured by the 16 kHz analysis the model sees.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dsp::analysis::analyze;
use crate::dsp::metrics::{loudness_l1_db, multiscale_spectral_distance, raw_pitch_accuracy};
use crate::dsp::resample::StreamingResampler;
use crate::dsp::synth::{FrameControls, HarmonicNoiseSynth, SynthConfig};
use crate::engine::audio::HopProcessor;
use crate::model::{load_model, BackendChoice, ModelKind};
use crate::style::controls::OCTAVE;
use crate::style::render::hop_length;
use crate::style::voice::GATE_OFF_DB;
use crate::style::{
    LatencyMode, SharedStyleSettings, StyleProcessor, StyleSettings, StyleStatus, TimbreModel,
    TimbreVoice, VoiceModels,
};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::data::{analyse_clip, read_mono, wav_files, Clip};
use super::voice_eval::gated_rms_db;
use super::{timbre_analysis_config, SAMPLE_RATE_HZ};

/// The non-neural baseline: an instrument's average harmonic distribution and a loudness →
/// amplitude calibration, measured on its training audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarmonicProfile {
    /// Mean normalised harmonic amplitudes (sums to 1).
    pub distribution: Vec<f32>,
    /// Median of (Σ harmonic amplitudes) / 10^(loudness_db / 20).
    pub amplitude_per_loudness: f32,
    /// Frames the profile was measured on.
    pub frames_measured: usize,
}

impl HarmonicProfile {
    /// Measures the profile on voiced frames louder than −50 dB (every 32nd frame), with a
    /// 32 ms Hann window and a DFT evaluated at `k·f0` below the clips' Nyquist frequency.
    pub fn measure(clips: &[&Clip], harmonics: usize) -> Self {
        let rate = clips.first().map_or(SAMPLE_RATE_HZ, |c| c.sample_rate);
        let window_len = (512 * rate / SAMPLE_RATE_HZ) as usize;
        let window: Vec<f64> = (0..window_len)
            .map(|j| 0.5 - 0.5 * (std::f64::consts::TAU * j as f64 / window_len as f64).cos())
            .collect();
        let window_sum: f64 = window.iter().sum();
        let nyquist = f64::from(rate) / 2.0;
        let mut sums = vec![0.0f64; harmonics];
        let mut ratios = Vec::new();
        for clip in clips {
            for i in (0..clip.frames()).step_by(32) {
                let f0 = f64::from(clip.raw_f0_hz[i]);
                if !clip.voiced[i] || clip.loudness_db[i] < -50.0 || f0 <= 0.0 {
                    continue;
                }
                let Some(start) = clip.frame_start(i).checked_sub(window_len / 2) else {
                    continue;
                };
                let Some(segment) = clip.audio.get(start..start + window_len) else {
                    continue;
                };
                let mut amps = vec![0.0f64; harmonics];
                for (k, amp) in amps.iter_mut().enumerate() {
                    let f = (k + 1) as f64 * f0;
                    if f >= nyquist {
                        break;
                    }
                    let w = std::f64::consts::TAU * f / f64::from(rate);
                    let (step_re, step_im) = (w.cos(), -w.sin());
                    let (mut re, mut im) = (1.0f64, 0.0f64);
                    let (mut acc_re, mut acc_im) = (0.0f64, 0.0f64);
                    for (x, win) in segment.iter().zip(&window) {
                        let v = f64::from(*x) * win;
                        acc_re += v * re;
                        acc_im += v * im;
                        (re, im) = (re * step_re - im * step_im, re * step_im + im * step_re);
                    }
                    *amp = 2.0 * (acc_re * acc_re + acc_im * acc_im).sqrt() / window_sum;
                }
                let total: f64 = amps.iter().sum();
                if total <= 0.0 {
                    continue;
                }
                for (s, a) in sums.iter_mut().zip(&amps) {
                    *s += a / total;
                }
                ratios.push(total / 10f64.powf(f64::from(clip.loudness_db[i]) / 20.0));
            }
        }
        let count = ratios.len();
        ratios.sort_by(f64::total_cmp);
        let norm: f64 = sums.iter().sum::<f64>().max(1e-12);
        Self {
            distribution: sums.iter().map(|s| (s / norm) as f32).collect(),
            amplitude_per_loudness: ratios.get(count / 2).copied().unwrap_or(1.0) as f32,
            frames_measured: count,
        }
    }

    /// Renders the baseline for a clip at its own rate: profile × calibrated amplitude, held
    /// f0, no noise, each frame over the host-rate hop the plugin would give it.
    pub fn render(&self, clip: &Clip, loudness_min_db: f32) -> Result<Vec<f32>> {
        let rate = clip.sample_rate;
        let max_hop = crate::style::render::max_hop_length(rate);
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(
            rate as f32,
            max_hop,
            self.distribution.len(),
            0,
        ))?;
        let mut out = Vec::with_capacity(clip.audio.len() + max_hop);
        let mut hop = vec![0.0; max_hop];
        for (j, (&f0_hz, &loudness_db)) in clip.f0_hz.iter().zip(&clip.loudness_db).enumerate() {
            let amplitude = if loudness_db <= loudness_min_db {
                0.0
            } else {
                self.amplitude_per_loudness * 10f32.powf(loudness_db / 20.0)
            };
            let len = hop_length(rate, j as u64);
            synth.process_frame(
                &FrameControls {
                    f0_hz,
                    amplitude,
                    harmonic_distribution: &self.distribution,
                    noise_magnitudes: &[],
                },
                &mut hop[..len],
            );
            out.extend_from_slice(&hop[..len]);
        }
        Ok(out)
    }
}

/// Figures for one pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    /// File name.
    pub name: String,
    /// Seconds of audio.
    pub seconds: f32,
    /// Spectral distance model output → target.
    pub msd_model: f32,
    /// Spectral distance untransformed source → target (baseline a).
    pub msd_source: f32,
    /// Spectral distance additive baseline → target (baseline b).
    pub msd_additive: Option<f32>,
    /// Raw pitch accuracy of the output against the source.
    pub rpa: f32,
    /// Loudness L1 output vs source, all frames floored at `loudness_min_db`.
    pub loudness_l1_db: f32,
    /// The same over the source's voiced frames only.
    pub loudness_l1_voiced_db: f32,
}

/// How [`eval_timbre`] plays the sources to the plugin's processor.
#[derive(Debug, Clone, Copy)]
pub struct TimbreEvalOptions {
    /// Host rate the pairs are read and restyled at, Hz.
    pub rate: u32,
    /// Each source is played at this gated RMS level (dBFS) instead of its own, and the output
    /// scaled back before it is compared: does the transfer depend on how loud the player
    /// records? `None`: as rendered.
    pub input_db: Option<f32>,
    /// Style's Auto Level (the plugin's default: on).
    pub auto_level: bool,
    /// Style's Octave (−2…2): a pair whose target plays in another octave than its source (a
    /// flute restyled as a cello an octave down) is evaluated as a musician would play it.
    pub octave: i32,
}

/// Result of [`eval_timbre`].
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Model manifest evaluated.
    pub model: PathBuf,
    /// Folder of pairs.
    pub paired_dir: PathBuf,
    /// Host rate the pairs were read and restyled at, Hz.
    pub rate: u32,
    /// The source level and Auto Level setting (see [`TimbreEvalOptions`]).
    pub input_db: Option<f32>,
    /// Whether Auto Level was on.
    pub auto_level: bool,
    /// Style's Octave setting.
    pub octave: i32,
    /// Backend that ran the model.
    pub backend: String,
    /// One row per pair.
    pub pairs: Vec<PairResult>,
    /// Pairs skipped (missing twin, unreadable), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = values.fold((0.0f64, 0usize), |(s, n), v| (s + f64::from(v), n + 1));
    if n == 0 {
        0.0
    } else {
        (s / n as f64) as f32
    }
}

impl EvalReport {
    /// Mean spectral distance of the model output.
    pub fn msd_model(&self) -> f32 {
        mean(self.pairs.iter().map(|p| p.msd_model))
    }
    /// Mean spectral distance of baseline (a).
    pub fn msd_source(&self) -> f32 {
        mean(self.pairs.iter().map(|p| p.msd_source))
    }
    /// Mean spectral distance of baseline (b), if it could be computed.
    pub fn msd_additive(&self) -> Option<f32> {
        let v: Vec<f32> = self.pairs.iter().filter_map(|p| p.msd_additive).collect();
        (!v.is_empty()).then(|| mean(v.into_iter()))
    }
    /// Mean raw pitch accuracy.
    pub fn rpa(&self) -> f32 {
        mean(self.pairs.iter().map(|p| p.rpa))
    }
    /// Mean loudness L1 (all frames).
    pub fn loudness_l1_db(&self) -> f32 {
        mean(self.pairs.iter().map(|p| p.loudness_l1_db))
    }
    /// Mean loudness L1 (voiced frames).
    pub fn loudness_l1_voiced_db(&self) -> f32 {
        mean(self.pairs.iter().map(|p| p.loudness_l1_voiced_db))
    }
    /// Relative reduction `1 − model / baseline`.
    pub fn improvement_over(baseline: f32, model: f32) -> f32 {
        if baseline > 0.0 {
            1.0 - model / baseline
        } else {
            0.0
        }
    }
    /// Every bar of the design (≥ 30 % below both baselines, RPA ≥ 95 %, loudness ≤ 1 dB).
    pub fn bars(&self) -> Vec<(String, bool)> {
        let m = self.msd_model();
        let mut bars = vec![(
            format!(
                "spectral distance ≥ 30 % below untransformed source ({:.1} %)",
                100.0 * Self::improvement_over(self.msd_source(), m)
            ),
            Self::improvement_over(self.msd_source(), m) >= 0.30,
        )];
        match self.msd_additive() {
            Some(b) => bars.push((
                format!(
                    "spectral distance ≥ 30 % below additive baseline ({:.1} %)",
                    100.0 * Self::improvement_over(b, m)
                ),
                Self::improvement_over(b, m) >= 0.30,
            )),
            None => bars.push((
                "additive baseline unavailable (no profile in the manifest)".into(),
                false,
            )),
        }
        bars.push((
            format!("RPA ≥ 95 % ({:.1} %)", 100.0 * self.rpa()),
            self.rpa() >= 0.95,
        ));
        bars.push((
            format!("loudness L1 ≤ 1 dB ({:.2} dB)", self.loudness_l1_db()),
            self.loudness_l1_db() <= 1.0,
        ));
        bars
    }

    /// The report as Markdown (appended to `<model>.report.md` by the CLI).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let level = match self.input_db {
            Some(db) => format!(", sources played at {db} dBFS"),
            None => String::new(),
        };
        let auto_level = if self.auto_level {
            ""
        } else {
            ", Auto Level off"
        };
        let octave = match self.octave {
            0 => String::new(),
            n => format!(", Octave {n:+}"),
        };
        s.push_str(&format!(
            "## Paired evaluation at {} Hz{level}{auto_level}{octave}: `{}` ({} pairs, {:.1} min, backend {})\n\n",
            self.rate,
            self.paired_dir.display(),
            self.pairs.len(),
            self.pairs.iter().map(|p| p.seconds).sum::<f32>() / 60.0,
            self.backend
        ));
        s.push_str("| file | MSD model | MSD source (a) | MSD additive (b) | RPA | loudness L1 dB (all / voiced) |\n");
        s.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for p in &self.pairs {
            s.push_str(&format!(
                "| {} | {:.3} | {:.3} | {} | {:.1} % | {:.2} / {:.2} |\n",
                p.name,
                p.msd_model,
                p.msd_source,
                p.msd_additive.map_or("n/a".into(), |v| format!("{v:.3}")),
                100.0 * p.rpa,
                p.loudness_l1_db,
                p.loudness_l1_voiced_db
            ));
        }
        s.push_str(&format!(
            "| **mean** | **{:.3}** | **{:.3}** | **{}** | **{:.1} %** | **{:.2} / {:.2}** |\n\n",
            self.msd_model(),
            self.msd_source(),
            self.msd_additive()
                .map_or("n/a".into(), |v| format!("{v:.3}")),
            100.0 * self.rpa(),
            self.loudness_l1_db(),
            self.loudness_l1_voiced_db()
        ));
        s.push_str("Bars:\n");
        for (text, ok) in self.bars() {
            s.push_str(&format!("- [{}] {text}\n", if ok { "x" } else { " " }));
        }
        for (path, reason) in &self.skipped {
            s.push_str(&format!("- skipped `{}`: {reason}\n", path.display()));
        }
        s
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_markdown())
    }
}

/// The plugin's processor for `model` as the evaluation runs it: mono, at `rate` Hz, quality
/// mode, gate off, Auto Level and Octave as given, every other setting at its default.
///
/// # Errors
/// The voice or the processor cannot be built for the model at this rate.
pub fn evaluation_processor(
    model: TimbreModel,
    rate: u32,
    auto_level: bool,
    octave: i32,
) -> Result<StyleProcessor> {
    let settings = Arc::new(SharedStyleSettings::default());
    settings.store(&StyleSettings {
        gate_db: GATE_OFF_DB,
        auto_level,
        octave: octave as f32,
        ..StyleSettings::default()
    });
    let voice = TimbreVoice::new(
        VoiceModels { a: model, b: None },
        LatencyMode::Quality,
        settings,
        Arc::new(StyleStatus::default()),
    )?;
    Ok(StyleProcessor::new(
        rate as f32,
        1,
        LatencyMode::Quality,
        Some(voice),
    )?)
}

/// Restyles mono `audio` with `processor` (reset first, so every clip starts alike) and
/// returns audio aligned with the input: the reported latency removed, the same length.
pub fn transfer(processor: &mut StyleProcessor, audio: &[f32]) -> Vec<f32> {
    processor.reset();
    let (hop, latency) = (processor.hop_size(), processor.latency_samples());
    let mut output = Vec::with_capacity(audio.len() + latency + hop);
    let mut hop_in = vec![vec![0.0f32; hop]];
    let mut hop_out = vec![vec![0.0f32; hop]];
    for start in (0..audio.len() + latency).step_by(hop) {
        for (k, x) in hop_in[0].iter_mut().enumerate() {
            *x = audio.get(start + k).copied().unwrap_or(0.0);
        }
        processor.process_hop(&hop_in, &mut hop_out);
        output.extend_from_slice(&hop_out[0]);
    }
    output.drain(..latency.min(output.len()));
    output.resize(audio.len(), 0.0);
    output
}

/// The additive baseline moved one frame earlier: the synth reaches a frame's values at the end
/// of its hop, while the processor's output has its latency removed.
fn advance_one_frame(mut audio: Vec<f32>, rate: u32, len: usize) -> Vec<f32> {
    audio.drain(..hop_length(rate, 0).min(audio.len()));
    audio.resize(len, 0.0);
    audio
}

/// Evaluates a timbre model on a folder of pairs; see the [module docs](self).
///
/// # Errors
/// The manifest does not load, is not a timbre model, or no pair is usable.
pub fn eval_timbre(
    model_manifest: &Path,
    paired_dir: &Path,
    options: &TimbreEvalOptions,
) -> Result<EvalReport> {
    let rate = options.rate;
    let loaded = load_model(model_manifest, ModelKind::Timbre, BackendChoice::Auto)
        .with_context(|| format!("cannot load {}", model_manifest.display()))?;
    let manifest = loaded.manifest.clone();
    let backend = loaded.backend.to_string();
    ensure!(
        OCTAVE.contains(options.octave as f32),
        "--octave must lie between {} and {} (got {})",
        OCTAVE.min,
        OCTAVE.max,
        options.octave
    );
    let mut processor = evaluation_processor(
        TimbreModel::new(loaded)?,
        rate,
        options.auto_level,
        options.octave,
    )?;
    // What the output should sound at: the source's pitch moved by the Octave.
    let pitch_ratio = (options.octave as f32).exp2();
    let features = manifest
        .features
        .clone()
        .context("timbre manifest without `features`")?;
    let profile: Option<HarmonicProfile> = manifest
        .training
        .as_ref()
        .and_then(|t| t.get("baseline_harmonic_profile"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let source_dir = paired_dir.join("source");
    let target_dir = paired_dir.join("target");
    let mut report = EvalReport {
        model: model_manifest.to_path_buf(),
        paired_dir: paired_dir.to_path_buf(),
        rate,
        input_db: options.input_db,
        auto_level: options.auto_level,
        octave: options.octave,
        backend,
        pairs: Vec::new(),
        skipped: Vec::new(),
    };
    // The output is the model's instrument: analyse it from the model's own floor.
    let analysis = timbre_analysis_config(features.f0_min_hz);
    for source_path in wav_files(&source_dir)? {
        let name = source_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target_path = target_dir.join(&name);
        let result = (|| -> Result<PairResult> {
            if !target_path.exists() {
                bail!("no twin {}", target_path.display());
            }
            let source = read_mono(&source_path, rate)?;
            let target = read_mono(&target_path, rate)?;
            // The player's level; what is compared is scaled back to the source's own.
            let gain = options
                .input_db
                .map_or(1.0, |db| 10f32.powf((db - gated_rms_db(&source)) / 20.0));
            let scaled_back =
                |x: Vec<f32>| -> Vec<f32> { x.into_iter().map(|v| v / gain).collect() };
            let played: Vec<f32> = source.iter().map(|&x| x * gain).collect();
            let mut clip = analyse_clip(&name, played, rate, &features)?;
            let output = transfer(&mut processor, &clip.audio);
            // The Octave moves the pitch the output (and the baseline) should play at.
            for f0 in clip.f0_hz.iter_mut().chain(&mut clip.raw_f0_hz) {
                *f0 *= pitch_ratio;
            }
            let additive = match &profile {
                Some(p) => Some(advance_one_frame(
                    p.render(&clip, features.loudness_min_db)?,
                    rate,
                    clip.audio.len(),
                )),
                None => None,
            };
            let output_16k = StreamingResampler::resample(&output, rate, SAMPLE_RATE_HZ)?;
            let out_analysis = analyze(&output_16k, SAMPLE_RATE_HZ as f32, &analysis)?;
            let out_f0: Vec<f32> = out_analysis.frames.iter().map(|f| f.f0_hz).collect();
            let floor = |l: f32| l.max(features.loudness_min_db);
            let src_l: Vec<f32> = clip.loudness_db.iter().map(|&l| floor(l)).collect();
            let out_l: Vec<f32> = out_analysis
                .frames
                .iter()
                .map(|f| floor(f.loudness_db))
                .collect();
            let (src_lv, out_lv): (Vec<f32>, Vec<f32>) = src_l
                .iter()
                .zip(&out_l)
                .zip(&clip.voiced)
                .filter(|(_, &v)| v)
                .map(|((a, b), _)| (*a, *b))
                .unzip();
            Ok(PairResult {
                name: name.clone(),
                seconds: clip.audio.len() as f32 / rate as f32,
                msd_model: multiscale_spectral_distance(&target, &scaled_back(output)),
                msd_source: multiscale_spectral_distance(&target, &source),
                msd_additive: additive
                    .map(|a| multiscale_spectral_distance(&target, &scaled_back(a))),
                rpa: raw_pitch_accuracy(&clip.raw_f0_hz, &clip.voiced, &out_f0),
                loudness_l1_db: loudness_l1_db(&src_l, &out_l),
                loudness_l1_voiced_db: loudness_l1_db(&src_lv, &out_lv),
            })
        })();
        match result {
            Ok(row) => report.pairs.push(row),
            Err(e) => report.skipped.push((source_path.clone(), format!("{e:#}"))),
        }
    }
    if report.pairs.is_empty() {
        bail!(
            "{}: no usable pair (expected source/*.wav with target/*.wav twins); skipped: {:?}",
            paired_dir.display(),
            report.skipped
        );
    }
    Ok(report)
}
