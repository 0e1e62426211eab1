//! Continuo Phrase's editor: a piano roll of what it heard and what it generated (click a
//! variation to play it), the Generate button, every parameter, the model with its card, the
//! detected key and the status in words.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::*;

use super::widgets::{param_row, status_line};
use super::EditorView;
use crate::midi::key::detect_key;
use crate::midi::Note;
use crate::model::manifest::Manifest;
use crate::model::ModelDirs;
use crate::phrase::engine::PhraseShared;
use crate::phrase::generate::{AUTO_MODEL, DEFAULT_MODEL, MELODY_MODEL};
use crate::phrase::roll::{PianoRoll, RollFeed};
use crate::plugin::phrase::{model_choice, KeyLockParam, PhraseParams, TriggerParam};

/// The running engine's shared values (set at activation, on the main thread).
pub type SharedSlot = Arc<Mutex<Option<Arc<PhraseShared>>>>;

/// Colours of the roll.
const HISTORY: egui::Color32 = egui::Color32::from_rgb(110, 160, 230);
const SELECTED: egui::Color32 = egui::Color32::from_rgb(255, 170, 60);
const OTHER: egui::Color32 = egui::Color32::from_rgba_premultiplied(120, 80, 30, 110);

/// Continuo Phrase's editor. See the [module docs](self).
pub struct PhraseEditor {
    params: Arc<PhraseParams>,
    shared: SharedSlot,
    roll_feed: Arc<RollFeed>,
    /// Set by the Generate button, taken by the audio thread at its next block.
    generate: Arc<AtomicBool>,
    dirs: ModelDirs,
    roll: PianoRoll,
    /// No frame drawn yet.
    first_frame: bool,
    /// The chosen model's card, by name (read from its manifest once per choice).
    card: Option<(String, String)>,
}

impl PhraseEditor {
    /// An editor for one Phrase instance.
    pub fn new(
        params: Arc<PhraseParams>,
        shared: SharedSlot,
        roll_feed: Arc<RollFeed>,
        generate: Arc<AtomicBool>,
        dirs: ModelDirs,
    ) -> Self {
        Self {
            params,
            shared,
            roll_feed,
            generate,
            dirs,
            roll: PianoRoll::default(),
            first_frame: true,
            card: None,
        }
    }

    fn header(&mut self, ui: &mut egui::Ui) {
        let shared = self.shared.lock().ok().and_then(|slot| slot.clone());
        ui.horizontal_wrapped(|ui| {
            ui.heading("Continuo Phrase");
            if ui
                .add(egui::Button::new(egui::RichText::new("Generate").strong()))
                .on_hover_text("Continue what was played, from the next bar")
                .clicked()
            {
                self.generate.store(true, Ordering::Release);
            }
            match &shared {
                Some(shared) => {
                    ui.label(format!(
                        "{} notes heard · {} continuations",
                        shared.notes_recorded.load(Ordering::Relaxed),
                        shared.generations.load(Ordering::Relaxed)
                    ));
                    let first = shared.first_note_ms.load(Ordering::Relaxed);
                    if first > 0.0 {
                        ui.label(format!("first note in {first:.0} ms"));
                    }
                }
                None => {
                    ui.label("not processing");
                }
            }
            match detect_key(&self.roll.history) {
                Some(key) => ui.label(format!("key: {key}")),
                None => ui.label("key: —"),
            };
        });
        let status = shared
            .as_ref()
            .and_then(|shared| shared.status.lock().ok().map(|s| s.clone()))
            .unwrap_or_default();
        status_line(ui, &status);
    }

    fn variations(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        ui.horizontal(|ui| {
            ui.label("Variation");
            if self.roll.variations.is_empty() {
                ui.weak("none generated yet");
            }
            for index in 0..self.roll.variations.len() {
                let selected = index == self.roll.selected;
                let button = ui.add(egui::Button::selectable(selected, format!("{}", index + 1)));
                button.widget_info(|| {
                    let name = format!("Variation {}", index + 1);
                    egui::WidgetInfo::selected(egui::Role::Button, true, selected, name)
                });
                if button.clicked() {
                    select_variation(setter, &self.params.variation, index);
                }
            }
        });
    }

    fn piano_roll(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let width = ui.available_width().max(300.0);
        let (response, painter) =
            ui.allocate_painter(egui::vec2(width, 220.0), egui::Sense::click());
        let rect = response.rect;
        painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
        let playhead = self.roll_feed.playhead();
        let view = RollView::fit(&self.roll, playhead, rect);
        // What the roll shows, in words (for screen readers and tests).
        let summary = match view {
            Some(_) => format!(
                "Piano roll: {} notes heard, {} variations",
                self.roll.history.len(),
                self.roll.variations.len()
            ),
            None => "Play something: what Phrase hears appears here".to_owned(),
        };
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &summary));
        let Some(view) = view else {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                summary,
                egui::FontId::proportional(14.0),
                ui.visuals().weak_text_color(),
            );
            return;
        };
        // Bar lines in the host's metre (at most 64 drawn).
        let bar = self.roll_feed.bar_beats().max(0.25);
        let first_bar = (view.beats.0 / bar).ceil();
        for n in 0..64 {
            let beat = (first_bar + f64::from(n)) * bar;
            if beat >= view.beats.1 {
                break;
            }
            let x = view.x(beat);
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                egui::Stroke::new(1.0, ui.visuals().faint_bg_color),
            );
        }
        for note in &self.roll.history {
            painter.rect_filled(view.note_rect(note), 1.0, HISTORY);
        }
        for (index, notes) in self.roll.variations.iter().enumerate() {
            if index != self.roll.selected {
                for note in notes {
                    painter.rect_filled(view.note_rect(note), 1.0, OTHER);
                }
            }
        }
        if let Some(notes) = self.roll.variations.get(self.roll.selected) {
            for note in notes {
                painter.rect_filled(view.note_rect(note), 1.0, SELECTED);
            }
        }
        let x = view.x(playhead);
        if (rect.left()..=rect.right()).contains(&x) {
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                egui::Stroke::new(1.5, ui.visuals().strong_text_color()),
            );
        }
        // A click on another variation's note plays that variation.
        if let Some(pos) = response
            .interact_pointer_pos()
            .filter(|_| response.clicked())
        {
            let hit = self.roll.variations.iter().position(|notes| {
                notes
                    .iter()
                    .any(|note| view.note_rect(note).expand(2.0).contains(pos))
            });
            if let Some(index) = hit {
                select_variation(setter, &self.params.variation, index);
            }
        }
    }

    fn model(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let p = &self.params;
        let no_model = model_choice()
            .list()
            .is_empty()
            .then_some("no continuation model is installed");
        param_row(ui, setter, &p.model, no_model);
        let name = model_choice().name(p.model.value()).map(str::to_owned);
        if let Some(name) = name {
            if self.card.as_ref().is_none_or(|(shown, _)| *shown != name) {
                let card = match self.dirs.find(&name).map(Manifest::load) {
                    _ if name == AUTO_MODEL => format!(
                        "Chooses by what was played: {MELODY_MODEL} for a melody, \
                         {DEFAULT_MODEL} for chords."
                    ),
                    Some(Ok(manifest)) => model_card(&manifest),
                    Some(Err(error)) => crate::model::chain_message(&error),
                    None => format!("{name} is not installed"),
                };
                self.card = Some((name, card));
            }
            if let Some((_, card)) = &self.card {
                ui.small(card);
            }
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui, setter: &ParamSetter) {
        let p = &self.params;
        let trigger = p.trigger.value();
        let not_auto = (trigger != TriggerParam::Auto).then_some("the trigger is not Auto");
        let not_every =
            (trigger != TriggerParam::EveryBars).then_some("the trigger is not Every N bars");
        let no_key = (p.key_lock.value() != KeyLockParam::Set).then_some("Key Lock is not Set");
        let midi_only = (!p.listen.value().audio()).then_some("Listen is MIDI only");
        ui.strong("Continuation");
        param_row(ui, setter, &p.trigger, None);
        param_row(ui, setter, &p.auto_beats, not_auto);
        param_row(ui, setter, &p.every_bars, not_every);
        param_row(ui, setter, &p.bars, None);
        param_row(ui, setter, &p.temperature, None);
        param_row(ui, setter, &p.top_p, None);
        param_row(ui, setter, &p.variations, None);
        param_row(ui, setter, &p.density, None);
        param_row(ui, setter, &p.texture, None);
        ui.strong("Key and range");
        param_row(ui, setter, &p.key_lock, None);
        param_row(ui, setter, &p.key_root, no_key);
        param_row(ui, setter, &p.key_mode, no_key);
        param_row(ui, setter, &p.pitch_low, None);
        param_row(ui, setter, &p.pitch_high, None);
        param_row(ui, setter, &p.velocity_scale, None);
        param_row(ui, setter, &p.quantize, None);
        ui.strong("Listening");
        param_row(ui, setter, &p.history_bars, None);
        param_row(ui, setter, &p.listen, None);
        param_row(ui, setter, &p.heard_out, midi_only);
        param_row(ui, setter, &p.follow_input, None);
        param_row(ui, setter, &p.thru, None);
        param_row(ui, setter, &p.bypass, None);
    }
}

impl EditorView for PhraseEditor {
    fn draw(&mut self, ui: &mut egui::Ui, gui: &GuiContext) {
        let setter = gui.param_setter();
        // A new window starts from the roll last published; then only newer ones are copied.
        let only_if_newer = !std::mem::take(&mut self.first_frame);
        self.roll_feed.copy_latest(&mut self.roll, only_if_newer);
        self.header(ui);
        ui.separator();
        self.variations(ui, &setter);
        self.piano_roll(ui, &setter);
        ui.separator();
        ui.columns(2, |columns| {
            self.model(&mut columns[0], &setter);
            columns[0].separator();
            egui::ScrollArea::vertical()
                .id_salt("phrase-controls")
                .show(&mut columns[1], |ui| self.controls(ui, &setter));
        });
    }

    fn set_open(&mut self, open: bool) {
        self.roll_feed.set_open(open);
    }
}

/// A continuation model's card: its description and held-out perplexity.
fn model_card(manifest: &Manifest) -> String {
    let description = manifest.description.clone().unwrap_or_default();
    match manifest.metrics.get("perplexity") {
        Some(perplexity) => format!("{description} Held-out perplexity {perplexity:.2}."),
        None => description,
    }
}

/// Sets the Variation parameter (1-based) to play `index` (0-based).
fn select_variation(setter: &ParamSetter, param: &IntParam, index: usize) {
    setter.begin_set_parameter(param);
    setter.set_parameter(param, index as i32 + 1);
    setter.end_set_parameter(param);
}

/// Where the roll's beats and pitches land on screen.
struct RollView {
    rect: egui::Rect,
    beats: (f64, f64),
    pitches: (u8, u8),
}

impl RollView {
    /// A view of every note and the playhead; `None` when there is no note.
    fn fit(roll: &PianoRoll, playhead: f64, rect: egui::Rect) -> Option<Self> {
        let notes = || roll.history.iter().chain(roll.variations.iter().flatten());
        let first = notes().map(|n| n.start_beat).reduce(f64::min)?;
        let last = notes().map(|n| n.end_beat).fold(playhead, f64::max);
        let low = notes().map(|n| n.pitch).min()?.saturating_sub(2);
        let high = notes()
            .map(|n| n.pitch)
            .max()?
            .saturating_add(2)
            .max(low + 12);
        Some(Self {
            rect,
            beats: (first.min(playhead), last.max(first + 1.0)),
            pitches: (low, high.min(127)),
        })
    }

    fn x(&self, beat: f64) -> f32 {
        let (start, end) = self.beats;
        self.rect.left() + ((beat - start) / (end - start)) as f32 * self.rect.width()
    }

    fn note_rect(&self, note: &Note) -> egui::Rect {
        let (low, high) = self.pitches;
        let row = self.rect.height() / f32::from(high - low + 1);
        let y = self.rect.bottom() - f32::from(note.pitch.saturating_sub(low) + 1) * row;
        egui::Rect::from_min_max(
            egui::pos2(self.x(note.start_beat), y),
            egui::pos2(
                self.x(note.end_beat).max(self.x(note.start_beat) + 2.0),
                y + row,
            ),
        )
    }
}
