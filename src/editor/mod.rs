//! The plugins' editors (egui in a baseview window, through nice-plug-egui).
//!
//! Each editor draws from what its plugin already publishes — parameters, the status in words,
//! engine counters, and the live feeds written only while an editor is open
//! ([`crate::style::monitor`], [`crate::phrase::roll`]) — and changes parameters only through
//! the host's [`ParamSetter`], so automation shows live both ways. Drawing is a plain function
//! of an [`egui::Ui`] and a [`GuiContext`], so tests drive it headless (no window, no GPU).

pub mod phrase;
pub mod style;
mod widgets;

use std::sync::Arc;
use std::time::Duration;

use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::editor::ResizeHint;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier,
};

/// Whether the live feeds run as if an editor were open (`CONTINUO_EDITOR_FEEDS` set): the
/// CLAP host tests use it to prove `process()` stays allocation-free with them on.
pub fn feeds_forced_open() -> bool {
    std::env::var_os("CONTINUO_EDITOR_FEEDS").is_some()
}

/// How an editor is drawn, whether in a host's window or a test's headless one.
pub trait EditorView: Send + 'static {
    /// Draws one frame; parameter changes go through `gui`'s setter.
    fn draw(&mut self, ui: &mut egui::Ui, gui: &GuiContext);
    /// The window opened (`true`) or closed: start or stop the live feeds.
    fn set_open(&mut self, open: bool);
}

/// Adapts an [`EditorView`] to nice-plug-egui: keeps the host's context, turns the live feeds
/// on while the window is open and repaints at the poll rate so meters and trails move.
pub struct HostedView<V> {
    view: V,
    gui: Option<GuiContext>,
    repaint: RepaintNotifier,
}

impl<V: EditorView> NiceEguiApp for HostedView<V> {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(gui);
        self.view.set_open(true);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        if let Some(gui) = &self.gui {
            self.view.draw(ui, gui);
        }
        // Live data has no event of its own: draw again at the next poll.
        self.repaint.request_repaint();
    }

    fn editor_closed(&mut self) {
        self.view.set_open(false);
        self.gui = None;
    }
}

/// The editor's size in logical pixels, kept between openings by `state` (a host reads it
/// before opening the window).
pub fn editor_state(width: f32, height: f32) -> Arc<EguiEditorState> {
    EguiEditorState::from_size(LogicalSize::new(width, height), 1.0)
}

/// A resizable editor showing `view`, no smaller than `min`.
pub fn create<V: EditorView>(
    state: Arc<EguiEditorState>,
    title: &str,
    (min_width, min_height): (f32, f32),
    view: V,
) -> Option<EguiEditor<HostedView<V>>> {
    let repaint = RepaintNotifier::new();
    let settings = EguiNiceSettings::new()
        .with_tile(title)
        .with_resize_hint(
            ResizeHint::resizable().with_min_logical_size(LogicalSize::new(min_width, min_height)),
        )
        .with_repaint_poll_interval(Duration::from_secs_f64(1.0 / 30.0));
    create_egui_editor(
        state,
        repaint.clone(),
        settings,
        HostedView {
            view,
            gui: None,
            repaint,
        },
    )
}
