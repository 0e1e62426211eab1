//! The loss curve PNG written next to a model (plotters, bitmap backend).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::training::TrainState;

/// Plots the training loss (raw and a 50-step moving mean) and the validation points.
///
/// # Errors
/// When the PNG cannot be drawn or written.
pub fn loss_png(path: &Path, state: &TrainState) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw loss plot: {e}", path.display());
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let n = state.train_loss.len().max(2);
    let values = state
        .train_loss
        .iter()
        .copied()
        .chain(state.valid_loss.iter().map(|v| v.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo < hi {
        (lo * 0.95, hi * 1.05)
    } else {
        (0.0, 1.0)
    };
    // Plain text caption/labels use the built-in font only when the feature exists; keep the
    // chart text-free so the bitmap backend needs no font support.
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(0)
        .y_label_area_size(0)
        .build_cartesian_2d(0f32..n as f32, lo..hi)
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            state
                .train_loss
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f32, v)),
            RGBColor(180, 200, 230),
        ))
        .map_err(|e| err(&e))?;
    let window = 50usize;
    let smooth: Vec<(f32, f32)> = (0..state.train_loss.len())
        .map(|i| {
            let a = i.saturating_sub(window - 1);
            let s = &state.train_loss[a..=i];
            (i as f32, s.iter().sum::<f32>() / s.len() as f32)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(smooth, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            state
                .valid_loss
                .iter()
                .map(|&(s, v)| Circle::new((s as f32, v), 5, RED.filled())),
        )
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
