//! Small drawing helpers both editors use.

use nice_plug::prelude::{Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;

/// Width of a parameter's name column.
const LABEL_WIDTH: f32 = 110.0;
/// Width of a parameter's slider.
const SLIDER_WIDTH: f32 = 150.0;

/// A parameter's name beside its slider (drag, double-click to reset, type a value), greyed
/// out and inert when it does nothing in the current state (`why_not` says why, on hover).
pub fn param_row<P: Param>(
    ui: &mut egui::Ui,
    setter: &ParamSetter,
    param: &P,
    why_not: Option<&str>,
) {
    ui.horizontal(|ui| {
        ui.add_enabled_ui(why_not.is_none(), |ui| {
            ui.add_sized([LABEL_WIDTH, 18.0], egui::Label::new(param.name()));
            let response = ui.add(ParamSlider::for_param(param, setter).with_width(SLIDER_WIDTH));
            if let Some(why) = why_not {
                response.on_disabled_hover_text(why);
            }
        });
    });
}

/// A horizontal level meter: `peak_db` against −60…0 dBFS, red from −3 dB.
pub fn level_meter(ui: &mut egui::Ui, label: &str, peak_db: f32) {
    ui.horizontal(|ui| {
        ui.add_sized([LABEL_WIDTH, 14.0], egui::Label::new(label));
        let (rect, _) =
            ui.allocate_exact_size(egui::vec2(SLIDER_WIDTH, 10.0), egui::Sense::hover());
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        let fill = ((peak_db + 60.0) / 60.0).clamp(0.0, 1.0);
        let mut bar = rect;
        bar.set_width(rect.width() * fill);
        let colour = if peak_db > -3.0 {
            egui::Color32::from_rgb(220, 70, 60)
        } else {
            egui::Color32::from_rgb(90, 190, 110)
        };
        painter.rect_filled(bar, 2.0, colour);
        let text = if peak_db <= -60.0 {
            "−∞ dB".to_owned()
        } else {
            format!("{peak_db:.1} dB")
        };
        ui.label(text);
    });
}

/// A peak meter's ballistics: jumps up, falls 20 dB per second.
#[derive(Debug, Clone, Copy)]
pub struct PeakHold {
    db: f32,
}

impl Default for PeakHold {
    fn default() -> Self {
        Self { db: -120.0 }
    }
}

impl PeakHold {
    /// Folds in a new linear peak seen over `seconds`; the level to show, in dB.
    pub fn update(&mut self, peak: f32, seconds: f32) -> f32 {
        let db = 20.0 * peak.max(1e-6).log10();
        self.db = db.max(self.db - 20.0 * seconds);
        self.db
    }
}

/// The status line: the latest message in words, in the warning colour when it is a problem.
pub fn status_line(ui: &mut egui::Ui, message: &str) {
    let problem = [
        "cannot", "failed", "refused", "not ", "no ", "ignored", "outside",
    ]
    .iter()
    .any(|word| message.contains(word));
    let text = if message.is_empty() {
        "starting…"
    } else {
        message
    };
    let text = egui::RichText::new(text);
    ui.label(if problem {
        text.color(ui.visuals().warn_fg_color)
    } else {
        text
    });
}
