//! The training report: `NAME.report.md` (metrics, baselines, data, recipe, verification) and
//! `NAME.loss.png` (loss curve).
//!
//! The PNG is drawn with plotters' bitmap backend only and contains **no text**, so it needs no
//! system fonts (plotters' text rendering would pull in fontconfig); the report's Markdown
//! gives the axes, ranges and colours instead.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::eval::{HeldOut, QUALITY_BAR};
use super::export::Verification;
use super::model::Architecture;
use super::training::LossPoint;

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 500);

/// What the loss plot shows, for the report's caption.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotAxes {
    /// Last step on the x axis (the x axis starts at 0).
    pub max_step: usize,
    /// y axis range, nats/token.
    pub y_range: (f64, f64),
}

/// Draws the loss curve: training loss (blue), held-out loss (red dots and line), 4-gram
/// held-out cross-entropy (green horizontal line), light grey grid lines every tenth of each
/// axis.
///
/// # Errors
/// If the PNG cannot be written.
pub fn plot_loss(path: &Path, history: &[LossPoint], four_gram_nats: f64) -> Result<PlotAxes> {
    let max_step = history.last().map(|p| p.step).unwrap_or(1).max(1);
    let values = history
        .iter()
        .flat_map(|p| std::iter::once(p.train).chain(p.valid))
        .chain(std::iter::once(four_gram_nats))
        .filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (low, high) = if low.is_finite() && high > low {
        let pad = 0.05 * (high - low);
        ((low - pad).max(0.0), high + pad)
    } else {
        (0.0, 1.0)
    };
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..max_step as f64, low..high)?;
        let grey = RGBColor(220, 220, 220);
        for i in 0..=10 {
            let x = max_step as f64 * f64::from(i) / 10.0;
            let y = low + (high - low) * f64::from(i) / 10.0;
            chart.draw_series(LineSeries::new([(x, low), (x, high)], grey))?;
            chart.draw_series(LineSeries::new([(0.0, y), (max_step as f64, y)], grey))?;
        }
        chart.draw_series(LineSeries::new(
            [(0.0, four_gram_nats), (max_step as f64, four_gram_nats)],
            GREEN.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(
            history.iter().map(|p| (p.step as f64, p.train)),
            BLUE.stroke_width(2),
        ))?;
        let valid: Vec<(f64, f64)> = history
            .iter()
            .filter_map(|p| p.valid.map(|v| (p.step as f64, v)))
            .collect();
        chart.draw_series(LineSeries::new(valid.iter().copied(), RED.stroke_width(2)))?;
        chart.draw_series(
            valid
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 4, RED.filled())),
        )?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    Ok(PlotAxes {
        max_step,
        y_range: (low, high),
    })
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInputs<'a> {
    /// Model name.
    pub name: &'a str,
    /// The model's card line, if it has one.
    pub description: Option<&'a str>,
    /// The network trained.
    pub architecture: Architecture,
    /// Held-out scores.
    pub held_out: HeldOut,
    /// Export verification per backend.
    pub verifications: &'a [Verification],
    /// Tokens/s of the exported model per backend (backend name, tokens/s).
    pub speed: &'a [(String, f64)],
    /// Loss curve.
    pub history: &'a [LossPoint],
    /// The loss plot's axes (from [`plot_loss`]).
    pub axes: PlotAxes,
    /// File name of the PNG, relative to the report.
    pub plot_file: &'a str,
    /// Training summary (the manifest's `training` object).
    pub training: &'a serde_json::Value,
    /// Files skipped, with reasons.
    pub skipped: &'a [(String, String)],
}

/// Writes the Markdown report.
///
/// # Errors
/// If the file cannot be written.
pub fn write_report(path: &Path, r: &ReportInputs<'_>) -> Result<()> {
    let mut md = String::new();
    let h = &r.held_out;
    let _ = writeln!(md, "# Continuation model `{}`\n", r.name);
    if let Some(description) = r.description {
        let _ = writeln!(md, "{description}\n");
    }
    let _ = writeln!(md, "Network: {}.\n", r.architecture.label());
    let verdict = if h.meets_bar() { "meets" } else { "MISSES" };
    let _ = writeln!(
        md,
        "Held-out perplexity **{:.3}** ({:.3} bits/token): {:.1} % below the 4-gram's \
         {:.3}, which {verdict} the design bar of {:.0} %.\n",
        h.model.perplexity(),
        h.model.bits_per_token(),
        100.0 * h.improvement_over_four_gram(),
        h.four_gram.perplexity(),
        100.0 * QUALITY_BAR
    );
    let _ = writeln!(md, "## Held-out evaluation ({} tokens)\n", h.model.tokens);
    let _ = writeln!(
        md,
        "| model | perplexity | bits/token |\n| --- | ---: | ---: |"
    );
    for (label, e) in [
        (
            format!(
                "{} (exported ONNX, as the plugin runs it)",
                r.architecture.label()
            ),
            h.model,
        ),
        ("Kneser–Ney 4-gram".into(), h.four_gram),
        ("unigram (add-one)".into(), h.unigram),
    ] {
        let _ = writeln!(
            md,
            "| {label} | {:.3} | {:.3} |",
            e.perplexity(),
            e.bits_per_token()
        );
    }
    let _ = writeln!(
        md,
        "\n## Export verification (burn vs ONNX, one token per call)\n"
    );
    let _ = writeln!(
        md,
        "| backend | steps | max logit error | max state error |\n| --- | ---: | ---: | ---: |"
    );
    for v in r.verifications {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2e} | {:.2e} |",
            v.backend, v.steps, v.max_logit_error, v.max_state_error
        );
    }
    if !r.speed.is_empty() {
        let _ = writeln!(
            md,
            "\n## Speed of the exported model (one token per call)\n"
        );
        let _ = writeln!(md, "| backend | tokens/s |\n| --- | ---: |");
        for (backend, tps) in r.speed {
            let _ = writeln!(md, "| {backend} | {tps:.0} |");
        }
    }
    let _ = writeln!(md, "\n## Loss curve\n");
    let _ = writeln!(
        md,
        "![loss]({})\n\nx: optimiser steps 0–{}; y: cross-entropy in nats/token, {:.3}–{:.3}. \
         Blue: training loss (mean per logging interval); red: held-out loss (burn forward \
         pass); green: the 4-gram's held-out cross-entropy. Grid lines at tenths of each axis. \
         (The image has no text so that it needs no fonts.)\n",
        r.plot_file, r.axes.max_step, r.axes.y_range.0, r.axes.y_range.1
    );
    if let Some(last) = r.history.iter().rev().find(|p| p.valid.is_some()) {
        let _ = writeln!(
            md,
            "Last held-out loss {:.4} nats/token at step {}.\n",
            last.valid.unwrap_or(f64::NAN),
            last.step
        );
    }
    let _ = writeln!(md, "## Training\n\n```json\n{}\n```\n", pretty(r.training));
    if !r.skipped.is_empty() {
        let _ = writeln!(md, "## Skipped files ({})\n", r.skipped.len());
        for (file, reason) in r.skipped {
            let _ = writeln!(md, "- `{file}`: {reason}");
        }
    }
    std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
