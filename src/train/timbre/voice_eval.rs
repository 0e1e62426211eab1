//! Continuo Voice against the instrument it was trained on, on held-out melodies.
//!
//! For every held-out MIDI file with a reference render of the same notes (FluidSynth, the
//! instrument the model learned, `render_pairs.py`): the MIDI is played through the
//! instrument's own engine ([`crate::instrument::render_notes`], at the host rate), and — as the
//! non-neural baseline — through a plain additive synth with the same notes and the same
//! contour (the instrument's average harmonic profile from the manifest, amplitude calibrated
//! to loudness, no noise). Both are scaled to the reference's gated RMS level (the references
//! are level-normalised the same way), then compared with the project's multi-scale spectral
//! distance over the full band. Also measured: how close the output's f0 stays to each note
//! during its sustain, and the loudness each velocity plays at.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::dsp::analysis::analyze;
use crate::dsp::metrics::multiscale_spectral_distance;
use crate::dsp::midi_to_hz;
use crate::dsp::synth::{FrameControls, HarmonicNoiseSynth, SynthConfig};
use crate::instrument::contour::{velocity_db, Envelope, NotePitch, Stage, SILENT_DB};
use crate::instrument::{
    load_bank, notes_from_song, render_notes, InstrumentEngine, ScheduledNote, SharedVoiceSettings,
    VoiceSettings,
};
use crate::model::{load_model, BackendChoice, ModelDirs, ModelKind};
use crate::style::render::{hop_length, max_hop_length};
use crate::style::{StyleChoice, StyleStatus};

use super::data::read_mono;
use super::eval::HarmonicProfile;
use super::timbre_analysis_config;

/// Blocks of the gated level measure, and how far below the loudest a block still counts (as
/// `render_pairs.py` normalises the references).
const GATE_BLOCK: usize = 1024;
const GATE_RANGE_DB: f32 = 40.0;
/// The part of a note whose pitch is judged: after the attack, before the release.
const SUSTAIN_SKIP_S: f32 = 0.06;
const SUSTAIN_END_S: f32 = 0.03;
/// Velocities of the loudness-per-velocity table.
const VELOCITIES: [u8; 8] = [16, 32, 48, 64, 80, 96, 112, 127];

/// Figures for one melody.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceEvalRow {
    /// MIDI file name.
    pub name: String,
    /// Notes played.
    pub notes: usize,
    /// Seconds of audio compared.
    pub seconds: f32,
    /// Spectral distance Voice → reference.
    pub msd_voice: f32,
    /// Spectral distance additive baseline → reference.
    pub msd_additive: f32,
    /// |cents| of every voiced sustain frame of the Voice output from its note.
    #[serde(skip)]
    pub cents: Vec<f32>,
}

/// Result of [`eval_voice`].
#[derive(Debug, Clone, Serialize)]
pub struct VoiceEvalReport {
    /// Model manifest evaluated.
    pub model: PathBuf,
    /// Held-out MIDI files.
    pub midi_dir: PathBuf,
    /// Reference renders (same stems, `.wav`).
    pub reference_dir: PathBuf,
    /// Host rate, Hz.
    pub rate: u32,
    /// One row per melody.
    pub rows: Vec<VoiceEvalRow>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// (velocity, loudness dB) of a G4 at each of [`VELOCITIES`].
    pub velocity_loudness: Vec<(u8, f32)>,
}

impl VoiceEvalReport {
    /// Mean improvement over the additive baseline, `1 − msd_voice / msd_additive`.
    pub fn improvement(&self) -> f32 {
        let n = self.rows.len().max(1) as f32;
        self.rows
            .iter()
            .map(|r| 1.0 - r.msd_voice / r.msd_additive.max(1e-9))
            .sum::<f32>()
            / n
    }

    /// (median |cents|, share of frames within 10 cents) over every sustain frame.
    pub fn pitch(&self) -> (f32, f32) {
        let mut all: Vec<f32> = self
            .rows
            .iter()
            .flat_map(|r| r.cents.iter().copied())
            .collect();
        if all.is_empty() {
            return (f32::NAN, 0.0);
        }
        all.sort_by(f32::total_cmp);
        let within = all.iter().filter(|&&c| c <= 10.0).count() as f32 / all.len() as f32;
        (all[all.len() / 2], within)
    }

    /// Each quality bar of the Voice issue and whether it is met.
    pub fn bars(&self) -> Vec<(String, bool)> {
        let improvement = self.improvement();
        let (median, within) = self.pitch();
        let rising = self.velocity_loudness.windows(2).all(|w| w[1].1 > w[0].1);
        vec![
            (
                format!(
                    "spectral distance ≥ 30 % below the additive baseline ({:.1} %)",
                    100.0 * improvement
                ),
                improvement >= 0.30,
            ),
            (
                format!(
                    "f0 within 10 cents of the note during sustains ({:.1} % of frames, median {median:.1} cents)",
                    100.0 * within
                ),
                within >= 0.90,
            ),
            ("loudness rises with velocity".into(), rising),
        ]
    }

    /// The report as Markdown (a table per melody, the velocity table, the bars).
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "## Continuo Voice vs the instrument at {} Hz ({} held-out melodies in `{}`, references in `{}`)\n\n\
             | melody | notes | s | MSD Voice | MSD additive | improvement | f0 within 10 ct |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.rate,
            self.rows.len(),
            self.midi_dir.display(),
            self.reference_dir.display(),
        );
        for row in &self.rows {
            let within = row.cents.iter().filter(|&&c| c <= 10.0).count() as f32
                / row.cents.len().max(1) as f32;
            out += &format!(
                "| {} | {} | {:.1} | {:.3} | {:.3} | {:.1} % | {:.1} % |\n",
                row.name,
                row.notes,
                row.seconds,
                row.msd_voice,
                row.msd_additive,
                100.0 * (1.0 - row.msd_voice / row.msd_additive.max(1e-9)),
                100.0 * within
            );
        }
        out += "\n| velocity | loudness dB (A) |\n| ---: | ---: |\n";
        for (velocity, db) in &self.velocity_loudness {
            out += &format!("| {velocity} | {db:.1} |\n");
        }
        out += "\n";
        for (bar, met) in self.bars() {
            out += &format!("- [{}] {bar}\n", if met { "x" } else { " " });
        }
        for (path, why) in &self.skipped {
            out += &format!("- skipped {}: {why}\n", path.display());
        }
        out
    }
}

/// Evaluates the timbre model `model_manifest` as Continuo Voice; see the [module docs](self).
///
/// # Errors
/// The model does not load, has no baseline profile, or no melody is usable.
pub fn eval_voice(
    model_manifest: &Path,
    midi_dir: &Path,
    reference_dir: &Path,
    rate: u32,
    settings: &VoiceSettings,
) -> Result<VoiceEvalReport> {
    let loaded = load_model(model_manifest, ModelKind::Timbre, BackendChoice::Auto)
        .with_context(|| format!("cannot load {}", model_manifest.display()))?;
    let profile: HarmonicProfile = loaded
        .manifest
        .training
        .as_ref()
        .and_then(|t| t.get("baseline_harmonic_profile"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .with_context(|| {
            format!(
                "{}: no `training.baseline_harmonic_profile` (the additive baseline)",
                model_manifest.display()
            )
        })?;
    // Voice plays each model in its own range: analyse it from the model's floor.
    let f0_floor_hz = loaded
        .manifest
        .features
        .as_ref()
        .map_or(super::F0_MIN_HZ, |f| f.f0_min_hz);
    let settings = settings.sanitized();
    let model = model_manifest.to_string_lossy().into_owned();
    let play = |notes: &[ScheduledNote], frames: usize| -> Result<Vec<f32>> {
        let choice = StyleChoice {
            a: model.clone(),
            b: None,
        };
        let status = Arc::new(StyleStatus::default());
        let (bank, _) = load_bank(
            &choice,
            &ModelDirs::new(Vec::<PathBuf>::new()),
            BackendChoice::Auto,
            rate,
            status.clone(),
        )?;
        let mut engine = InstrumentEngine::start(
            rate,
            1,
            512,
            Some(bank),
            Arc::new(SharedVoiceSettings::new(&settings)),
            status,
        )?;
        Ok(render_notes(&mut engine, notes, frames, 512, 1).remove(0))
    };

    let mut report = VoiceEvalReport {
        model: model_manifest.to_path_buf(),
        midi_dir: midi_dir.to_path_buf(),
        reference_dir: reference_dir.to_path_buf(),
        rate,
        rows: Vec::new(),
        skipped: Vec::new(),
        velocity_loudness: Vec::new(),
    };
    for midi_path in midi_files(midi_dir)? {
        let result = (|| -> Result<VoiceEvalRow> {
            let stem = midi_path.file_stem().unwrap_or_default().to_string_lossy();
            let reference_path = reference_dir.join(format!("{stem}.wav"));
            if !reference_path.exists() {
                bail!("no reference {}", reference_path.display());
            }
            let reference = read_mono(&reference_path, rate)?;
            let notes = notes_from_song(&crate::midi::read(&midi_path)?, rate)?;
            let level = gated_rms_db(&reference);
            let voice = scaled_to(play(&notes, reference.len())?, level);
            let additive = scaled_to(
                render_additive(&notes, &profile, &settings, rate, reference.len())?,
                level,
            );
            Ok(VoiceEvalRow {
                name: midi_path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                notes: notes.len(),
                seconds: reference.len() as f32 / rate as f32,
                msd_voice: multiscale_spectral_distance(&reference, &voice),
                msd_additive: multiscale_spectral_distance(&reference, &additive),
                cents: sustain_cents(&voice, &notes, rate, f0_floor_hz)?,
            })
        })();
        match result {
            Ok(row) => report.rows.push(row),
            Err(e) => report.skipped.push((midi_path.clone(), format!("{e:#}"))),
        }
    }
    if report.rows.is_empty() {
        bail!(
            "{}: no usable melody (expected *.mid with *.wav twins in {}); skipped: {:?}",
            midi_dir.display(),
            reference_dir.display(),
            report.skipped
        );
    }
    let seconds = |s: f32| (s * rate as f32) as usize;
    for velocity in VELOCITIES {
        let note = ScheduledNote {
            note: 67,
            velocity: f32::from(velocity) / 127.0,
            start: seconds(0.05),
            end: seconds(0.8),
        };
        let out = play(&[note], seconds(0.9))?;
        let analysis = analyze(
            &out[seconds(0.3)..seconds(0.7)],
            rate as f32,
            &timbre_analysis_config(f0_floor_hz),
        )?;
        let mut levels: Vec<f32> = analysis.frames.iter().map(|f| f.loudness_db).collect();
        levels.sort_by(f32::total_cmp);
        report.velocity_loudness.push((
            velocity,
            levels.get(levels.len() / 2).copied().unwrap_or(f32::NAN),
        ));
    }
    Ok(report)
}

fn midi_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// RMS level (dB) over the blocks within [`GATE_RANGE_DB`] of the loudest: how
/// `render_pairs.py` measures the level it normalises every render to.
pub(crate) fn gated_rms_db(x: &[f32]) -> f32 {
    let powers: Vec<f32> = x
        .chunks(GATE_BLOCK)
        .map(|b| b.iter().map(|v| v * v).sum::<f32>() / b.len() as f32)
        .collect();
    let loudest = powers.iter().copied().fold(0.0, f32::max);
    let gate = loudest * 10f32.powf(-GATE_RANGE_DB / 10.0);
    let kept: Vec<f32> = powers
        .into_iter()
        .filter(|&p| p >= gate && p > 0.0)
        .collect();
    if kept.is_empty() {
        return SILENT_DB;
    }
    10.0 * (kept.iter().sum::<f32>() / kept.len() as f32).log10()
}

fn scaled_to(mut x: Vec<f32>, level_db: f32) -> Vec<f32> {
    let gain = 10f32.powf((level_db - gated_rms_db(&x)) / 20.0);
    if gain.is_finite() {
        x.iter_mut().for_each(|v| *v *= gain);
    }
    x
}

/// The baseline: every note with Voice's own contour and pitch, played by an additive synth
/// with the instrument's average harmonic profile.
fn render_additive(
    notes: &[ScheduledNote],
    profile: &HarmonicProfile,
    settings: &VoiceSettings,
    rate: u32,
    frames: usize,
) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; frames];
    let max_hop = max_hop_length(rate);
    let mut hop = vec![0.0f32; max_hop];
    let frame_ms = crate::instrument::FRAME_MS;
    for note in notes {
        let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(
            rate as f32,
            max_hop,
            profile.distribution.len(),
            0,
        ))?;
        let mut envelope = Envelope::default();
        envelope.trigger(velocity_db(note.velocity, settings.dynamics_db));
        let mut pitch = NotePitch::default();
        pitch.start(f32::from(note.note));
        let (mut at, mut frame) = (note.start, 0u64);
        while at < frames && envelope.stage() != Stage::Done {
            if at >= note.end {
                envelope.release();
            }
            let loudness_db = envelope.next(frame_ms, settings);
            let f0_hz = midi_to_hz(pitch.next(frame_ms, settings, 0.0));
            let amplitude = if loudness_db <= SILENT_DB {
                0.0
            } else {
                profile.amplitude_per_loudness * 10f32.powf(loudness_db / 20.0)
            };
            let len = hop_length(rate, frame);
            synth.process_frame(
                &FrameControls {
                    f0_hz,
                    amplitude,
                    harmonic_distribution: &profile.distribution,
                    noise_magnitudes: &[],
                },
                &mut hop[..len],
            );
            for (o, h) in out[at..].iter_mut().zip(&hop[..len]) {
                *o += h;
            }
            at += len;
            frame += 1;
        }
    }
    Ok(out)
}

/// |cents| from its note of every voiced frame inside a note's sustain.
fn sustain_cents(
    audio: &[f32],
    notes: &[ScheduledNote],
    rate: u32,
    f0_floor_hz: f32,
) -> Result<Vec<f32>> {
    let analysis = analyze(audio, rate as f32, &timbre_analysis_config(f0_floor_hz))?;
    let mut cents = Vec::new();
    for frame in analysis.frames.iter().filter(|f| f.voicing >= 0.5) {
        let t = frame.time_s;
        let sounding = notes.iter().find(|n| {
            let (start, end) = (n.start as f32 / rate as f32, n.end as f32 / rate as f32);
            t >= start + SUSTAIN_SKIP_S && t <= end - SUSTAIN_END_S
        });
        if let Some(note) = sounding {
            let target = midi_to_hz(f32::from(note.note));
            cents.push((1200.0 * (frame.f0_hz / target).log2()).abs());
        }
    }
    Ok(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gated_level_ignores_silence() {
        let rate = 48_000.0;
        let mut x: Vec<f32> = (0..48_000)
            .map(|n| 0.5 * (std::f32::consts::TAU * 440.0 * n as f32 / rate).sin())
            .collect();
        x.extend(std::iter::repeat_n(0.0, 96_000));
        let expected = 20.0 * (0.5 / std::f32::consts::SQRT_2).log10();
        assert!(
            (gated_rms_db(&x) - expected).abs() < 0.1,
            "{}",
            gated_rms_db(&x)
        );
        assert!((gated_rms_db(&scaled_to(x, -30.0)) + 30.0).abs() < 0.01);
        assert_eq!(gated_rms_db(&[0.0; 4096]), SILENT_DB);
    }

    #[test]
    fn the_additive_baseline_plays_each_note_with_voices_contour() {
        let rate = 48_000;
        let profile = HarmonicProfile {
            distribution: vec![1.0],
            amplitude_per_loudness: 1.0,
            frames_measured: 1,
        };
        let settings = VoiceSettings::default();
        let note = ScheduledNote {
            note: 69,
            velocity: 1.0,
            start: 4_800,
            end: 24_000,
        };
        let out = render_additive(&[note], &profile, &settings, rate, 48_000).unwrap();
        assert!(
            out[..4_800].iter().all(|&x| x == 0.0),
            "silent before the note"
        );
        // Sustain (from 0.44 s: 40 ms attack, 300 ms decay): the peak (−20 dB at velocity 127)
        // plus the sustain level, as amplitude.
        let sustain =
            10f32.powf((velocity_db(1.0, settings.dynamics_db) + settings.sustain_db) / 20.0);
        let peak = out[21_600..24_000]
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            (peak - sustain).abs() < 0.02 * sustain,
            "{peak} vs {sustain}"
        );
        // Released at 0.5 s, 60 dB down 250 ms later.
        let tail = out[40_000..].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(tail < 1e-3 * sustain, "{tail}");
    }
}
