//! The plugins' editors (egui in a baseview window, through nice-plug-egui).
//!
//! Each editor draws from what its plugin already publishes — parameters, the status in words,
//! engine counters, and the live feeds written only while an editor is open
//! ([`crate::style::monitor`], [`crate::phrase::roll`]) — and changes parameters only through
//! the host's [`ParamSetter`](nice_plug::prelude::ParamSetter), so automation shows live both
//! ways. Drawing is a plain function of an [`egui::Ui`] and a [`GuiContext`], so tests drive
//! it headless (no window, no GPU).

pub mod phrase;
pub mod style;
mod widgets;

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nice_plug::context::gui::{GuiContext, GuiContextInner};
use nice_plug::context::PluginApi;
use nice_plug::editor::dpi::{LogicalSize, NativeSize};
use nice_plug::editor::{Editor, HostMethods, ParentWindowHandle, ResizeHint, SpawnedEditor};
use nice_plug::params::internals::ParamPtr;
use nice_plug::prelude::PluginState;
use nice_plug_egui::baseview::WindowSize;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings,
    NiceEguiApp, RepaintNotifier,
};
use serde::{Deserialize, Serialize};

/// Whether the live feeds run as if an editor were open (`CONTINUO_EDITOR_FEEDS` set): the
/// CLAP host tests use it to prove `process()` stays allocation-free with them on.
pub fn feeds_forced_open() -> bool {
    std::env::var_os("CONTINUO_EDITOR_FEEDS").is_some()
}

/// A GUI context for an editor without a host (the preview example, tests): parameter changes
/// are applied to the parameters directly, as nice-plug's wrappers apply a host's.
pub fn hostless_context() -> GuiContext {
    GuiContext::new(Arc::new(Hostless))
}

/// See [`hostless_context`].
struct Hostless;

impl GuiContextInner for Hostless {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Clap
    }

    unsafe fn raw_begin_set_parameter(&self, _param: ParamPtr) {}

    unsafe fn raw_set_parameter_normalized(&self, param: ParamPtr, normalized: f32) {
        // SAFETY: the pointer comes from a parameter the editor is drawing, which outlives it.
        unsafe {
            param._internal_set_normalized_value(normalized);
        }
    }

    unsafe fn raw_end_set_parameter(&self, _param: ParamPtr) {}

    /// Nothing is saved without a host: an empty state.
    fn get_state(&self) -> PluginState {
        PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        }
    }

    fn set_state(&self, _state: PluginState) {}

    fn request_restart(&self) {}
}

/// How an editor is drawn, whether in a host's window or a test's headless one.
pub trait EditorView: Send + 'static {
    /// Draws one frame; parameter changes go through `gui`'s setter.
    fn draw(&mut self, ui: &mut egui::Ui, gui: &GuiContext);
    /// The window opened (`true`) or closed: start or stop the live feeds.
    fn set_open(&mut self, open: bool);
}

/// An editor's size in logical pixels, saved with the session (a `#[persist]` field).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EditorSize {
    /// Width, logical pixels.
    pub width: f32,
    /// Height, logical pixels.
    pub height: f32,
}

/// The saved size, shared by the plugin's parameters and its editor.
pub type SavedEditorSize = Arc<Mutex<EditorSize>>;

/// A new saved size.
pub fn saved_size(width: f32, height: f32) -> SavedEditorSize {
    Arc::new(Mutex::new(EditorSize { width, height }))
}

/// Adapts an [`EditorView`] to nice-plug-egui: keeps the host's context, turns the live feeds
/// on while the window is open, remembers the window's size and repaints at the poll rate so
/// meters and trails move.
pub struct HostedView<V> {
    view: V,
    gui: Option<GuiContext>,
    repaint: RepaintNotifier,
    size: SavedEditorSize,
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

    fn resized(&mut self, size: WindowSize) {
        if let Ok(mut saved) = self.size.lock() {
            *saved = EditorSize {
                width: size.logical.width as f32,
                height: size.logical.height as f32,
            };
        }
    }

    fn editor_closed(&mut self) {
        self.view.set_open(false);
        self.gui = None;
    }
}

/// A resizable editor that opens at the session's saved size. nice-plug asks for an editor
/// once, before a session is restored, so the egui editor is made anew each time the window
/// opens, from the size saved by then.
pub struct SizedEditor<V: EditorView> {
    size: SavedEditorSize,
    min: (f32, f32),
    title: &'static str,
    make_view: Box<dyn Fn() -> V + Send>,
    /// The egui editor of the window last opened.
    current: Mutex<Option<EguiEditor<HostedView<V>>>>,
}

impl<V: EditorView> SizedEditor<V> {
    /// An editor titled `title`, no smaller than `min`, showing a view from `make_view`.
    pub fn new(
        size: SavedEditorSize,
        min: (f32, f32),
        title: &'static str,
        make_view: impl Fn() -> V + Send + 'static,
    ) -> Self {
        Self {
            size,
            min,
            title,
            make_view: Box::new(make_view),
            current: Mutex::new(None),
        }
    }

    fn resize_hint(&self) -> ResizeHint {
        ResizeHint::resizable().with_min_logical_size(LogicalSize::new(self.min.0, self.min.1))
    }
}

impl<V: EditorView> Editor for SizedEditor<V> {
    type Handle = EguiEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn Error>> {
        let saved = self
            .size
            .lock()
            .map(|s| *s)
            .map_err(|_| "editor size lock")?;
        let repaint = RepaintNotifier::new();
        let settings = EguiNiceSettings::new()
            .with_tile(self.title)
            .with_resize_hint(self.resize_hint())
            .with_repaint_poll_interval(Duration::from_secs_f64(1.0 / 30.0));
        let state = EguiEditorState::from_size(LogicalSize::new(saved.width, saved.height), 1.0);
        let app = HostedView {
            view: (self.make_view)(),
            gui: None,
            repaint: repaint.clone(),
            size: self.size.clone(),
        };
        let editor = create_egui_editor(state, repaint, settings, app).ok_or("no egui editor")?;
        let spawned = editor.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )?;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(editor);
        }
        Ok(spawned)
    }

    fn size(&self) -> NativeSize<u32> {
        if let Some(editor) = self.current.lock().ok().as_ref().and_then(|c| c.as_ref()) {
            return editor.size();
        }
        // Before the first window: the saved size at scale 1 (the host scales it after).
        let saved = self.size.lock().map(|s| *s).unwrap_or(EditorSize {
            width: self.min.0,
            height: self.min.1,
        });
        NativeSize::new(saved.width.round() as u32, saved.height.round() as u32)
    }

    fn resize_hint(&self) -> ResizeHint {
        SizedEditor::resize_hint(self)
    }
}
