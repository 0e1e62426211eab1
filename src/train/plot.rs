//! The loss curve PNG written next to every trained model, `NAME.loss.png`, by both trainers.
//!
//! The PNG is drawn with plotters' bitmap backend only and contains **no text**, so it needs no
//! system fonts (plotters' text rendering would pull in fontconfig); the reports' Markdown
//! gives the axes, ranges and colours instead ([`PlotAxes::caption`]).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::run::LossPoint;

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 500);

/// What the loss plot shows, for the report's caption.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotAxes {
    /// Last step on the x axis (the x axis starts at 0).
    pub max_step: usize,
    /// y axis range, in the loss's unit.
    pub y_range: (f64, f64),
}

impl PlotAxes {
    /// The report's caption for the image `file`: axes, ranges and colours. `loss` names the
    /// y axis ("cross-entropy in nats/token"); `reference` names the green line, if drawn.
    pub fn caption(&self, file: &str, loss: &str, reference: Option<&str>) -> String {
        let reference = reference.map_or(String::new(), |what| format!(" green: {what};"));
        format!(
            "![loss]({file})\n\nx: optimiser steps 0–{}; y: {loss}, {:.3}–{:.3}. Blue: training \
             loss (mean per logging interval); red: held-out loss;{reference} grid lines at \
             tenths of each axis. (The image has no text so that it needs no fonts.)\n",
            self.max_step, self.y_range.0, self.y_range.1
        )
    }
}

/// Draws the loss curve: training loss (blue), held-out loss (red dots and line), a reference
/// loss such as a baseline's (green horizontal line), light grey grid lines every tenth of
/// each axis.
///
/// # Errors
/// If the PNG cannot be written.
pub fn plot_loss(path: &Path, history: &[LossPoint], reference: Option<f64>) -> Result<PlotAxes> {
    let max_step = history.last().map(|p| p.step).unwrap_or(1).max(1);
    let values = history
        .iter()
        .flat_map(|p| std::iter::once(p.train).chain(p.valid))
        .chain(reference)
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
        if let Some(level) = reference {
            chart.draw_series(LineSeries::new(
                [(0.0, level), (max_step as f64, level)],
                GREEN.stroke_width(2),
            ))?;
        }
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
