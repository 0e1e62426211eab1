//! The continuation model's training report: `NAME.report.md` (metrics, baselines, data,
//! recipe, verification), with the loss curve drawn by [`super::plot`].

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::eval::{HeldOut, QUALITY_BAR};
use super::export::Verification;
use super::model::Architecture;
use super::plot::PlotAxes;
use super::run::LossPoint;

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
    /// The loss plot's axes (from [`super::plot::plot_loss`]).
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
        "{}",
        r.axes.caption(
            r.plot_file,
            "cross-entropy in nats/token",
            Some("the 4-gram's held-out cross-entropy")
        )
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
