//! Continuo Style's editor: the model browser with each model's card, what the model hears
//! (pitch and loudness trails against the chosen model's range), every parameter, the status
//! and the level meters.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::*;

use super::widgets::{level_meter, param_row, status_line, PeakHold};
use super::EditorView;
use crate::engine::audio::EngineStats;
use crate::model::lookup::{scan, user_model_dir};
use crate::model::manifest::{Manifest, ModelKind};
use crate::model::{ModelDirs, RuntimeSearch};
use crate::plugin::style::{style_a, style_b, style_models, StyleParams};
use crate::style::monitor::{HeardFrame, TRAIL_FRAMES};
use crate::style::StyleStatus;

/// What the running engine tells the editor (set at activation, on the main thread).
#[derive(Debug, Clone)]
pub struct RunningEngine {
    /// The engine's counters (atomics).
    pub stats: Arc<EngineStats>,
    /// Latency reported to the host, samples.
    pub latency_samples: usize,
    /// The host's sample rate, Hz.
    pub sample_rate: f32,
}

/// The engine the editor reports on: `None` before activation or where Style cannot run.
pub type EngineSlot = Arc<Mutex<Option<RunningEngine>>>;

/// One timbre model as the browser shows it.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// The model's name (manifest file stem): what the Style parameters choose.
    pub name: String,
    /// Where its manifest is.
    pub path: PathBuf,
    /// The manifest, or why it cannot be used.
    pub manifest: Result<Manifest, String>,
}

impl ModelCard {
    /// The f0 (Hz) and loudness (dB) ranges the model was trained on.
    fn ranges(&self) -> Option<((f32, f32), (f32, f32))> {
        let features = self.manifest.as_ref().ok()?.features.as_ref()?;
        Some((
            (features.f0_min_hz, features.f0_max_hz),
            (features.loudness_min_db, features.loudness_max_db),
        ))
    }

    /// Whether the model recorded its training level (Auto Level has something to match).
    fn has_reference_level(&self) -> bool {
        self.manifest
            .as_ref()
            .ok()
            .and_then(|m| m.features.as_ref())
            .is_some_and(|f| f.loudness_reference_db.is_some())
    }
}

/// Every timbre model in `dirs` (first of each name), with its card or its problem.
pub fn model_cards(dirs: &ModelDirs) -> Vec<ModelCard> {
    let mut cards: Vec<ModelCard> = Vec::new();
    for found in scan(dirs) {
        let Some(name) = found.path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if cards.iter().any(|card| card.name == name) {
            continue;
        }
        let manifest = match found.result {
            Ok(manifest) if manifest.kind != ModelKind::Timbre => continue,
            Ok(manifest) => Ok(manifest),
            Err(error) => Err(crate::model::chain_message(&error)),
        };
        cards.push(ModelCard {
            name: name.to_owned(),
            path: found.path,
            manifest,
        });
    }
    cards
}

/// Seconds of trail drawn.
const TRAIL_SECONDS: f32 = 4.0;
/// The trail's pitch axis, Hz (log scale): cello C2 to a flute's top.
const PLOT_F0_HZ: (f32, f32) = (50.0, 4000.0);
/// The trail's loudness axis, dB.
const PLOT_LOUDNESS_DB: (f32, f32) = (-80.0, 0.0);

/// Continuo Style's editor. See the [module docs](self).
pub struct StyleEditor {
    params: Arc<StyleParams>,
    status: Arc<StyleStatus>,
    engine: EngineSlot,
    dirs: ModelDirs,
    /// Scanned when first drawn and on Refresh (file I/O, on the GUI thread only).
    cards: Option<Vec<ModelCard>>,
    /// The model runtime, probed when first drawn.
    backend: Option<String>,
    trail: Vec<HeardFrame>,
    meters: (PeakHold, PeakHold),
    last_frame: Option<Instant>,
}

impl StyleEditor {
    /// An editor for one Style instance, looking for models in `dirs`.
    pub fn new(
        params: Arc<StyleParams>,
        status: Arc<StyleStatus>,
        engine: EngineSlot,
        dirs: ModelDirs,
    ) -> Self {
        Self {
            params,
            status,
            engine,
            dirs,
            cards: None,
            backend: None,
            trail: Vec::with_capacity(TRAIL_FRAMES),
            meters: Default::default(),
            last_frame: None,
        }
    }

    /// Scans the model folders again (a model copied in after the plugin loaded appears).
    pub fn refresh(&mut self) {
        self.cards = Some(model_cards(&self.dirs));
    }

    fn cards(&mut self) -> &[ModelCard] {
        if self.cards.is_none() {
            self.refresh();
        }
        self.cards.as_deref().unwrap_or_default()
    }

    fn chosen_names(&self) -> (Option<&'static str>, Option<&'static str>) {
        (
            style_a().name(self.params.style.value()),
            style_b().name(self.params.style_b.value()),
        )
    }

    fn header(&mut self, ui: &mut egui::Ui) {
        let engine = self.engine.lock().ok().and_then(|slot| slot.clone());
        ui.horizontal_wrapped(|ui| {
            ui.heading("Continuo Style");
            match &engine {
                Some(engine) => {
                    let stats = &engine.stats;
                    let load = stats.worker_load.load(Ordering::Relaxed);
                    ui.label(format!(
                        "latency {:.1} ms",
                        engine.latency_samples as f32 * 1000.0 / engine.sample_rate
                    ));
                    ui.label(if load > 0.0 {
                        format!("worker {:.0}× real time", 1.0 / load)
                    } else {
                        "worker idle".to_owned()
                    });
                    ui.label(format!(
                        "misses {}",
                        stats.late_blocks.load(Ordering::Relaxed)
                    ));
                }
                None => {
                    ui.label("not processing");
                }
            }
            let backend = self.backend.get_or_insert_with(|| {
                crate::model::describe_auto_backend(&RuntimeSearch::default())
            });
            ui.label(format!("runs on {}", short_backend(backend)))
                .on_hover_text(backend.as_str());
        });
        status_line(ui, &self.status.message());
    }

    fn browser(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        ui.horizontal(|ui| {
            ui.strong("Models");
            if ui.button("Refresh").clicked() {
                self.refresh();
            }
        });
        match user_model_dir() {
            Some(dir) => ui.small(format!("Your models: {}", dir.display())),
            None => ui.small("No user model folder (no home directory)"),
        };
        let (chosen_a, chosen_b) = self.chosen_names();
        self.cards();
        let (params, cards) = (&self.params, self.cards.as_deref().unwrap_or_default());
        egui::ScrollArea::vertical()
            .id_salt("models")
            .max_height(260.0)
            .show(ui, |ui| {
                for card in cards {
                    model_card(ui, setter, params, card, chosen_a, chosen_b);
                }
                if cards.is_empty() {
                    ui.label("No timbre model found.");
                }
            });
        if chosen_b.is_some() && ui.button("Style B off").clicked() {
            set(setter, &params.style_b, 0);
        }
    }

    fn hears(&mut self, ui: &mut egui::Ui) {
        ui.strong("What the model hears");
        let frames = (TRAIL_SECONDS * crate::style::features::FRAME_RATE_HZ) as usize;
        self.status.monitor.recent_frames(frames, &mut self.trail);
        let (chosen_a, _) = self.chosen_names();
        let ranges = chosen_a.and_then(|name| {
            self.cards()
                .iter()
                .find(|card| card.name == name)
                .and_then(ModelCard::ranges)
        });
        let latest = self.trail.last().copied();
        let inside = match (latest, ranges) {
            (
                Some(HeardFrame {
                    f0_hz: Some(f0),
                    loudness_db,
                }),
                Some((f0_range, db_range)),
            ) => Some(
                (f0_range.0..=f0_range.1).contains(&f0)
                    && (db_range.0..=db_range.1).contains(&loudness_db),
            ),
            _ => None,
        };
        ui.label(match (latest.and_then(|f| f.f0_hz), inside) {
            (Some(f0), Some(true)) => format!("{f0:.0} Hz: inside the model's range"),
            (Some(f0), Some(false)) => format!("{f0:.0} Hz: outside the model's range"),
            (Some(f0), None) => format!("{f0:.0} Hz"),
            (None, _) => "no pitch".to_owned(),
        });
        trail_plot(ui, &self.trail, frames, ranges, inside == Some(true));
        if self.params.auto_level.value() && self.chosen_has_reference_level() != Some(false) {
            ui.small(format!(
                "Auto Level: {:+.1} dB",
                self.status.monitor.level_offset_db()
            ));
        }
    }

    /// Whether style A's card records its training level (`None`: no card for it).
    fn chosen_has_reference_level(&mut self) -> Option<bool> {
        let (chosen_a, _) = self.chosen_names();
        let name = chosen_a?;
        self.cards()
            .iter()
            .find(|card| card.name == name)
            .map(ModelCard::has_reference_level)
    }

    fn controls(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let no_reference = (self.chosen_has_reference_level() == Some(false))
            .then_some("the model did not record its training level");
        let p = &self.params;
        let no_model = style_models()
            .is_empty()
            .then_some("no timbre model is installed");
        let no_b = (p.style_b.value() == 0).then_some("Style B is off");
        let bypassed = p.bypass.value().then_some("bypassed");
        let style = no_model.or(bypassed);
        ui.strong("Timbre");
        param_row(ui, setter, &p.style, style);
        param_row(ui, setter, &p.style_b, style);
        param_row(ui, setter, &p.morph, style.or(no_b));
        ui.strong("Pitch and input");
        param_row(ui, setter, &p.pitch_shift, style);
        param_row(ui, setter, &p.octave, style);
        param_row(ui, setter, &p.input_gain, style);
        param_row(ui, setter, &p.auto_level, style.or(no_reference));
        param_row(ui, setter, &p.gate, style);
        ui.strong("Tone");
        param_row(ui, setter, &p.balance, style);
        param_row(ui, setter, &p.brightness, style);
        ui.strong("Mix and output");
        param_row(ui, setter, &p.mode, None);
        param_row(ui, setter, &p.mix, bypassed);
        param_row(ui, setter, &p.output_gain, bypassed);
        param_row(ui, setter, &p.bypass, None);
        param_row(ui, setter, &p.offline, None);
    }

    fn meters(&mut self, ui: &mut egui::Ui) {
        let now = Instant::now();
        let seconds = self
            .last_frame
            .map_or(0.0, |last| (now - last).as_secs_f32());
        self.last_frame = Some(now);
        let (input, output) = self.status.monitor.take_peaks();
        level_meter(ui, "Input", self.meters.0.update(input, seconds));
        level_meter(ui, "Output", self.meters.1.update(output, seconds));
    }
}

impl EditorView for StyleEditor {
    fn draw(&mut self, ui: &mut egui::Ui, gui: &GuiContext) {
        let setter = gui.param_setter();
        self.header(ui);
        ui.separator();
        ui.columns(2, |columns| {
            self.browser(&mut columns[0], &setter);
            columns[0].separator();
            self.hears(&mut columns[0]);
            self.controls(&mut columns[1], &setter);
            columns[1].separator();
            self.meters(&mut columns[1]);
        });
    }

    fn set_open(&mut self, open: bool) {
        self.status.monitor.set_open(open);
    }
}

/// "ONNX Runtime" or "tract" without the details (shown on hover).
fn short_backend(backend: &str) -> &str {
    backend.split(" (").next().unwrap_or(backend)
}

/// Sets an integer parameter as one gesture.
fn set(setter: &ParamSetter, param: &IntParam, value: i32) {
    setter.begin_set_parameter(param);
    setter.set_parameter(param, value);
    setter.end_set_parameter(param);
}

/// One model's card with its A and B buttons.
fn model_card(
    ui: &mut egui::Ui,
    setter: &ParamSetter,
    params: &StyleParams,
    card: &ModelCard,
    chosen_a: Option<&str>,
    chosen_b: Option<&str>,
) {
    // A model installed after the host started takes one of the parameters' free slots when
    // it is first chosen.
    let listed = style_models().position(&card.name).is_some();
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong(&card.name);
            let usable = card.manifest.is_ok() && (listed || style_models().has_free_slot());
            let why = if card.manifest.is_err() {
                "this model cannot be loaded"
            } else {
                "installed after the host started, and every free slot is taken: restart the \
                 host to choose it"
            };
            for (label, is_chosen, choice, param) in [
                ("A", chosen_a == Some(&card.name), style_a(), &params.style),
                (
                    "B",
                    chosen_b == Some(&card.name),
                    style_b(),
                    &params.style_b,
                ),
            ] {
                let name = format!("Style {label}: {}", card.name);
                let button = ui
                    .add_enabled(usable, egui::Button::selectable(is_chosen, label))
                    .on_hover_text(&name)
                    .on_disabled_hover_text(why);
                // Screen readers (and tests) tell the cards' buttons apart by this name.
                button.widget_info(|| {
                    egui::WidgetInfo::selected(egui::Role::Button, usable, is_chosen, &name)
                });
                if button.clicked() {
                    if let Some(value) = choice.value_of(&card.name) {
                        set(setter, param, value);
                    }
                }
            }
        });
        match &card.manifest {
            Ok(manifest) => {
                if let Some(description) = &manifest.description {
                    ui.label(description);
                }
                let mut facts = vec![format!("{} parameters", manifest.parameter_count)];
                if let Some(synth) = &manifest.synth {
                    facts.push(format!("band to {:.0} kHz", synth.max_hz / 1000.0));
                }
                if let Some(features) = &manifest.features {
                    facts.push(format!(
                        "f0 {:.0}–{:.0} Hz",
                        features.f0_min_hz, features.f0_max_hz
                    ));
                }
                if manifest.latency_samples > 0 {
                    facts.push(format!("+{} samples latency", manifest.latency_samples));
                }
                ui.small(facts.join(" · "));
                if let Some(distance) = manifest.metrics.get("valid_spectral_distance") {
                    ui.small(format!("held-out spectral distance {distance:.3}"));
                }
            }
            Err(problem) => {
                ui.colored_label(ui.visuals().warn_fg_color, problem);
            }
        }
    });
}

/// Pitch (log scale) and loudness trails over the last seconds; the model's ranges shaded,
/// brighter while the input is inside them.
fn trail_plot(
    ui: &mut egui::Ui,
    trail: &[HeardFrame],
    frames: usize,
    ranges: Option<((f32, f32), (f32, f32))>,
    inside: bool,
) {
    let width = ui.available_width().max(200.0);
    let (response, painter) = ui.allocate_painter(egui::vec2(width, 160.0), egui::Sense::hover());
    let rect = response.rect;
    painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
    let log_f0 = |hz: f32| {
        let (low, high) = (PLOT_F0_HZ.0.ln(), PLOT_F0_HZ.1.ln());
        rect.bottom() - (hz.max(1.0).ln() - low) / (high - low) * rect.height()
    };
    let db_y = |db: f32| {
        let (low, high) = PLOT_LOUDNESS_DB;
        rect.bottom() - (db.clamp(low, high) - low) / (high - low) * rect.height()
    };
    if let Some(((f0_low, f0_high), _)) = ranges {
        let alpha = if inside { 60 } else { 25 };
        let band = egui::Rect::from_x_y_ranges(
            rect.x_range(),
            log_f0(f0_high).max(rect.top())..=log_f0(f0_low).min(rect.bottom()),
        );
        painter.rect_filled(
            band,
            0.0,
            egui::Color32::from_rgba_unmultiplied(90, 160, 255, alpha),
        );
    }
    let x =
        |i: usize| rect.right() - (trail.len() - i) as f32 / frames.max(1) as f32 * rect.width();
    let loudness: Vec<egui::Pos2> = trail
        .iter()
        .enumerate()
        .map(|(i, f)| egui::pos2(x(i), db_y(f.loudness_db)))
        .collect();
    painter.add(egui::Shape::line(
        loudness,
        egui::Stroke::new(1.0, egui::Color32::from_rgb(150, 150, 150)),
    ));
    for (i, frame) in trail.iter().enumerate() {
        if let Some(f0) = frame.f0_hz {
            let y = log_f0(f0);
            if (rect.top()..=rect.bottom()).contains(&y) {
                painter.circle_filled(
                    egui::pos2(x(i), y),
                    1.5,
                    egui::Color32::from_rgb(255, 190, 60),
                );
            }
        }
    }
    painter.text(
        rect.left_top() + egui::vec2(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        "pitch (dots, 50 Hz–4 kHz) · loudness (line, −80–0 dB)",
        egui::FontId::proportional(11.0),
        ui.visuals().weak_text_color(),
    );
}
