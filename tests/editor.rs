//! The editors, driven headless by egui_kittest (no window, no GPU): widgets are found by
//! their labels through AccessKit, as a screen reader would, and clicks go through egui.
//! Parameter changes go through the library's host-less GUI context, which applies them as the
//! plugin wrappers do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use continuo::editor::phrase::PhraseEditor;
use continuo::editor::style::StyleEditor;
use continuo::editor::{hostless_context, EditorSize, EditorView, SizedEditor};
use continuo::midi::Note;
use continuo::model::ModelDirs;
use continuo::phrase::roll::{PianoRoll, RollFeed, RollWriter};
use continuo::plugin::phrase::PhraseParams;
use continuo::plugin::style::StyleParams;
use continuo::style::StyleStatus;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use nice_plug::editor::dpi::NativeSize;
use nice_plug::prelude::*;

/// A headless harness drawing `view`; parameter changes are applied as a host would.
fn harness<V: EditorView>(mut view: V) -> Harness<'static, V> {
    let gui = hostless_context();
    view.set_open(true);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(900.0, 900.0))
        .build_ui_state(
            move |ui, view: &mut V| {
                egui::ScrollArea::vertical().show(ui, |ui| view.draw(ui, &gui));
            },
            view,
        );
    harness.run_steps(2);
    harness
}

/// A Style editor over `params` looking for models in `dirs`.
fn style_editor(params: Arc<StyleParams>, dirs: ModelDirs) -> StyleEditor {
    StyleEditor::new(
        params,
        Arc::new(StyleStatus::default()),
        Default::default(),
        dirs,
    )
}

fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Installs the shipped timbre models in a user model folder for this process and returns the
/// folder (the plugins' parameters list what the standard folders hold, once per process: this
/// makes that list). Every test calls it before it creates parameters.
fn install_user_models() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    let data = INSTALLED.get_or_init(|| {
        // Under target/ and emptied each run (a temporary directory in a static is never
        // removed: statics are not dropped).
        let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("editor-tests");
        let _ = std::fs::remove_dir_all(&data);
        let models = data.join("continuo/models");
        std::fs::create_dir_all(&models).expect("user model folder");
        for name in ["continuo-violin", "continuo-flute"] {
            for ext in ["json", "onnx"] {
                let file = format!("{name}.{ext}");
                std::fs::copy(repo_models().join(&file), models.join(&file)).expect("copy");
            }
        }
        std::env::set_var("XDG_DATA_HOME", &data);
        continuo::plugin::style::style_models();
        data
    });
    data.join("continuo/models")
}

#[test]
fn style_editor_shows_every_control_and_each_models_card() {
    install_user_models();
    let params = Arc::new(StyleParams::default());
    let editor = style_editor(params.clone(), ModelDirs::new([repo_models()]));
    let harness = harness(editor);
    for label in [
        "Style",
        "Style B",
        "Style Morph",
        "Pitch Shift",
        "Octave",
        "Input Gain",
        "Auto Level",
        "Gate",
        "Harmonic/Noise",
        "Brightness",
        "Latency Mode",
        "Mix",
        "Output Gain",
        "Bypass",
        "Offline Render",
        "Refresh",
        "Input",
        "Output",
        "What the model hears",
    ] {
        harness.get_by_label(label);
    }
    // The shipped timbre models, each with its card.
    harness.get_by_label("continuo-violin");
    harness.get_by_label("continuo-flute");
    assert!(harness.query_all_by_label_contains("parameters ·").count() >= 2);
    // No continuation model is listed among the timbre models.
    assert!(harness.query_by_label("continuo-chorales").is_none());
}

#[test]
fn style_editor_greys_out_morph_without_a_style_b() {
    install_user_models();
    let params = Arc::new(StyleParams::default());
    let editor = style_editor(params.clone(), ModelDirs::new([repo_models()]));
    let harness = harness(editor);
    assert!(harness
        .get_by_label("Style Morph")
        .accesskit_node()
        .is_disabled());
    assert!(!harness.get_by_label("Mix").accesskit_node().is_disabled());
}

#[test]
fn picking_a_model_in_the_browser_switches_the_style_parameters() {
    install_user_models();
    let params = Arc::new(StyleParams::default());
    let models: Vec<_> = continuo::plugin::style::style_models().names().collect();
    assert!(models.len() >= 2, "the installed models: {models:?}");
    let second = models[1];
    let editor = style_editor(params.clone(), ModelDirs::standard(&[]));
    let mut harness = harness(editor);
    assert_eq!(params.style.value(), 0);
    harness.get_by_label(&format!("Style A: {second}")).click();
    harness.run_steps(2);
    assert_eq!(params.style.value(), 1, "style A is now {second}");
    harness
        .get_by_label(&format!("Style B: {}", models[0]))
        .click();
    harness.run_steps(2);
    assert_eq!(params.style_b.value(), 1, "style B is now {}", models[0]);
    // With a style B, Morph does something and is enabled.
    assert!(!harness
        .get_by_label("Style Morph")
        .accesskit_node()
        .is_disabled());
}

#[test]
fn refresh_finds_a_model_copied_into_the_user_folder_after_start_up_and_it_can_be_chosen() {
    let user = install_user_models();
    let params = Arc::new(StyleParams::default());
    let editor = style_editor(params.clone(), ModelDirs::standard(&[]));
    let mut harness = harness(editor);
    assert!(harness.query_by_label("my-cello").is_none());
    for ext in ["json", "onnx"] {
        std::fs::copy(
            repo_models().join(format!("continuo-violin.{ext}")),
            user.join(format!("my-cello.{ext}")),
        )
        .expect("copy a model");
    }
    harness.run_steps(2);
    assert!(
        harness.query_by_label("my-cello").is_none(),
        "not before Refresh"
    );
    harness.get_by_label("Refresh").click();
    harness.run_steps(2);
    harness.get_by_label("my-cello");
    // The parameters were made before the model was installed; choosing it gives it a slot.
    let models = continuo::plugin::style::style_models();
    assert_eq!(models.position("my-cello"), None);
    harness.get_by_label("Style A: my-cello").click();
    harness.run_steps(2);
    assert_eq!(params.style.to_string(), "my-cello");
    assert_eq!(
        models.position("my-cello"),
        Some(params.style.value() as usize)
    );
}

fn note(pitch: u8, start_beat: f64) -> Note {
    Note {
        pitch,
        velocity: 90,
        channel: 0,
        start_beat,
        end_beat: start_beat + 0.5,
    }
}

fn phrase_editor(
    params: Arc<PhraseParams>,
    roll: Arc<RollFeed>,
) -> (PhraseEditor, Arc<AtomicBool>) {
    let generate = Arc::new(AtomicBool::new(false));
    let editor = PhraseEditor::new(
        params,
        Arc::new(Mutex::new(None)),
        roll,
        generate.clone(),
        ModelDirs::new([repo_models()]),
    );
    (editor, generate)
}

#[test]
fn phrase_editor_shows_every_control_and_generate_asks_the_audio_thread_for_a_continuation() {
    install_user_models();
    let params = Arc::new(PhraseParams::default());
    let (editor, generate) = phrase_editor(params.clone(), Arc::default());
    let mut harness = harness(editor);
    for label in [
        "Trigger",
        "Bars",
        "Temperature",
        "Top-p",
        "Variations",
        "Density",
        "Key Lock",
        "Lowest Note",
        "Highest Note",
        "Listen",
        "Model",
    ] {
        harness.get_by_label(label);
    }
    harness.get_by_label_contains("Play something");
    assert!(!generate.load(Ordering::Acquire));
    harness.get_by_label("Generate").click();
    harness.run_steps(2);
    assert!(
        generate.load(Ordering::Acquire),
        "the audio thread's next block sees the press"
    );
}

#[test]
fn phrase_editor_draws_the_published_roll_and_selects_a_variation() {
    install_user_models();
    let params = Arc::new(PhraseParams::default());
    let roll = Arc::new(RollFeed::default());
    let (editor, _) = phrase_editor(params.clone(), roll.clone());
    let mut harness = harness(editor);
    // A worker publishes what it heard and two variations (the editor is open).
    let mut writer = RollWriter::new(roll.clone());
    let played = [60, 62, 64, 65].map(|p| note(p, f64::from(p - 60)));
    writer.publish_if_needed(|r| {
        *r = PianoRoll {
            history: played.to_vec(),
            variations: vec![vec![note(67, 8.0)], vec![note(69, 8.0)]],
            selected: 0,
        }
    });
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("Play something").is_none());
    harness.get_by_label("Piano roll: 4 notes heard, 2 variations");
    harness.get_by_label_contains("key: ");
    assert_eq!(params.variation.value(), 1);
    harness.get_by_label("Variation 2").click();
    harness.run_steps(2);
    assert_eq!(params.variation.value(), 2, "the second variation plays");
    // Closed and opened again (a new view): the roll published before is there at once.
    drop(harness);
    let (reopened, _) = phrase_editor(params.clone(), roll.clone());
    let harness = self::harness(reopened);
    harness.get_by_label("Piano roll: 4 notes heard, 2 variations");
}

#[test]
fn the_editor_size_is_saved_with_the_session_and_used_when_the_window_opens() {
    install_user_models();
    let params = StyleParams::default();
    let resized = EditorSize {
        width: 900.0,
        height: 700.0,
    };
    *params.editor_size.lock().unwrap() = resized;
    let session = params.serialize_fields();
    let restored = Arc::new(StyleParams::default());
    assert_ne!(*restored.editor_size.lock().unwrap(), resized);
    restored.deserialize_fields(&session);
    assert_eq!(*restored.editor_size.lock().unwrap(), resized);
    // The host asks for the size before the window opens.
    let view_params = restored.clone();
    let editor = SizedEditor::new(
        restored.editor_size.clone(),
        (620.0, 480.0),
        "Style",
        move || {
            StyleEditor::new(
                view_params.clone(),
                Arc::default(),
                Default::default(),
                ModelDirs::new([repo_models()]),
            )
        },
    );
    assert_eq!(editor.size(), NativeSize::new(900, 700));
}
