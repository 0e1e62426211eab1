//! Continuo Phrase's parameters. IDs are stable: never rename them (sessions refer to them).

use std::sync::OnceLock;

use nice_plug::prelude::*;

use crate::midi::key::Scale;
use crate::model::ModelDirs;
use crate::phrase::engine::KeyLock;
use crate::phrase::generate::continuation_choices;
use crate::phrase::texture::TextureChoice;
use crate::phrase::trigger::TriggerMode;
use crate::plugin::model_choice::{ModelChoice, ModelList, SavedModelName};

/// ID of the Model parameter (also used when restoring a session).
pub const MODEL_ID: &str = "model";
/// Key of the saved model name in the plugin state.
pub const MODEL_NAME_KEY: &str = "model-name";

/// The continuation models the Model parameter chooses from: the standard model directories,
/// scanned once per process (every instance must agree on what an index means). Models added
/// later appear after a host restart.
pub fn model_choice() -> ModelChoice {
    static CHOICES: OnceLock<ModelList> = OnceLock::new();
    ModelChoice::new(
        CHOICES.get_or_init(|| {
            ModelList::scanned(|| continuation_choices(&ModelDirs::standard(&[])), 0)
        }),
        0,
    )
}

/// When a continuation starts.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerParam {
    /// Only when Generate is switched on.
    #[name = "Button"]
    Button,
    /// When the player pauses.
    #[name = "Auto (pause)"]
    Auto,
    /// Every N bars (call and response).
    #[name = "Every N bars"]
    EveryBars,
}

impl From<TriggerParam> for TriggerMode {
    fn from(value: TriggerParam) -> Self {
        match value {
            TriggerParam::Button => TriggerMode::Button,
            TriggerParam::Auto => TriggerMode::Auto,
            TriggerParam::EveryBars => TriggerMode::EveryBars,
        }
    }
}

/// The texture continuations are written in.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextureParam {
    /// One line when one line was played, chords when chords were.
    #[name = "As played"]
    AsPlayed,
    /// Always one line.
    #[name = "Melody"]
    Melody,
    /// Always chords.
    #[name = "Chords"]
    Chords,
}

impl From<TextureParam> for TextureChoice {
    fn from(value: TextureParam) -> Self {
        match value {
            TextureParam::AsPlayed => TextureChoice::AsPlayed,
            TextureParam::Melody => TextureChoice::Melody,
            TextureParam::Chords => TextureChoice::Chords,
        }
    }
}

/// Key lock.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLockParam {
    /// Any pitch.
    #[name = "Off"]
    Off,
    /// The key detected from what was played.
    #[name = "From input"]
    Detect,
    /// The key set by Key Root and Key Mode.
    #[name = "Set"]
    Set,
}

/// Major or minor, for a set key.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyModeParam {
    /// Major scale.
    #[name = "Major"]
    Major,
    /// Natural minor scale.
    #[name = "Minor"]
    Minor,
}

/// What the history (and the triggers) listen to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenParam {
    /// Notes arriving as MIDI.
    #[name = "MIDI"]
    Midi,
    /// The audio input, transcribed by the note tracker (a monophonic voice or instrument).
    #[name = "Audio"]
    Audio,
    /// Both.
    #[name = "MIDI + Audio"]
    Both,
}

impl ListenParam {
    /// Whether MIDI notes are recorded.
    pub fn midi(self) -> bool {
        matches!(self, Self::Midi | Self::Both)
    }

    /// Whether the audio input is transcribed.
    pub fn audio(self) -> bool {
        matches!(self, Self::Audio | Self::Both)
    }
}

/// Grid generated note starts snap to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantizeParam {
    /// The model's own grid (1/48 note: sixteenths and triplets).
    #[name = "Off"]
    Off,
    /// Quarter notes.
    #[name = "1/4"]
    Quarter,
    /// Eighth notes.
    #[name = "1/8"]
    Eighth,
    /// Eighth-note triplets.
    #[name = "1/8T"]
    EighthTriplet,
    /// Sixteenth notes.
    #[name = "1/16"]
    Sixteenth,
}

impl QuantizeParam {
    /// Grid in beats, `None` for off.
    pub fn beats(self) -> Option<f64> {
        match self {
            Self::Off => None,
            Self::Quarter => Some(1.0),
            Self::Eighth => Some(0.5),
            Self::EighthTriplet => Some(1.0 / 3.0),
            Self::Sixteenth => Some(0.25),
        }
    }
}

/// Parameters.
#[derive(Params)]
pub struct PhraseParams {
    /// Starts a continuation when switched on (a momentary button in most hosts).
    #[id = "generate"]
    pub generate: BoolParam,
    /// When continuations start.
    #[id = "trigger"]
    pub trigger: EnumParam<TriggerParam>,
    /// Pause (beats) that triggers in Auto mode.
    #[id = "auto_beats"]
    pub auto_beats: IntParam,
    /// Bar interval in Every-N-bars mode.
    #[id = "every_bars"]
    pub every_bars: IntParam,
    /// Bars generated per continuation.
    #[id = "bars"]
    pub bars: IntParam,
    /// Sampling temperature.
    #[id = "temperature"]
    pub temperature: FloatParam,
    /// Nucleus sampling mass.
    #[id = "top_p"]
    pub top_p: FloatParam,
    /// Continuations generated per trigger.
    #[id = "variations"]
    pub variations: IntParam,
    /// Which variation plays.
    #[id = "variation"]
    pub variation: IntParam,
    /// Target notes per beat; 0 leaves it to the model.
    #[id = "density"]
    pub density: FloatParam,
    /// Key lock mode.
    #[id = "key_lock"]
    pub key_lock: EnumParam<KeyLockParam>,
    /// Root of a set key (0 = C).
    #[id = "key_root"]
    pub key_root: IntParam,
    /// Mode of a set key.
    #[id = "key_mode"]
    pub key_mode: EnumParam<KeyModeParam>,
    /// Lowest generated pitch.
    #[id = "pitch_low"]
    pub pitch_low: IntParam,
    /// Highest generated pitch.
    #[id = "pitch_high"]
    pub pitch_high: IntParam,
    /// Velocity multiplier for generated notes.
    #[id = "velocity"]
    pub velocity_scale: FloatParam,
    /// Grid for generated note starts.
    #[id = "quantize"]
    pub quantize: EnumParam<QuantizeParam>,
    /// Bars of playing the history keeps.
    #[id = "history"]
    pub history_bars: IntParam,
    /// Pass incoming notes to the output.
    #[id = "thru"]
    pub thru: BoolParam,
    /// What the history listens to: MIDI, the audio input (transcribed), or both.
    #[id = "listen"]
    pub listen: EnumParam<ListenParam>,
    /// Send the notes heard in the audio input out as MIDI (live audio-to-MIDI).
    #[id = "heard_out"]
    pub heard_out: BoolParam,
    /// Host bypass: releases generated notes and passes input through.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Which continuation model generates (switched between generations); `auto` picks the
    /// melody or the chords model by the texture.
    #[id = "model"]
    pub model: IntParam,
    /// One line or chords (as played by default).
    #[id = "texture"]
    pub texture: EnumParam<TextureParam>,
    /// Keep continuations near the input's range and key.
    #[id = "follow_input"]
    pub follow_input: BoolParam,
    /// The Model parameter's choice by name, for sessions.
    #[persist = "model-name"]
    pub model_name: SavedModelName,
    /// The editor's size.
    #[persist = "editor-size"]
    pub editor_size: crate::editor::SavedEditorSize,
}

/// Unit of the Density parameter (part of its text, since "model" has none).
const DENSITY_UNIT: &str = " notes/beat";
/// Density's text for 0 (the model decides).
const DENSITY_MODEL: &str = "model";

impl Default for PhraseParams {
    fn default() -> Self {
        let choice = model_choice();
        let model_name = SavedModelName::new(choice);
        Self {
            generate: BoolParam::new("Generate", false),
            trigger: EnumParam::new("Trigger", TriggerParam::Button),
            auto_beats: IntParam::new("Auto Pause", 2, IntRange::Linear { min: 1, max: 16 })
                .with_unit(" beats"),
            every_bars: IntParam::new("Every", 4, IntRange::Linear { min: 1, max: 16 })
                .with_unit(" bars"),
            bars: IntParam::new("Bars", 2, IntRange::Linear { min: 1, max: 16 }).with_unit(" bars"),
            // Steps as fine as the text: what is shown is what is set, and reads back the same.
            temperature: FloatParam::new(
                "Temperature",
                1.0,
                FloatRange::Linear { min: 0.1, max: 2.0 },
            )
            .with_step_size(0.01)
            .with_value_to_string(formatters::v2s_f32_rounded(2)),
            top_p: FloatParam::new("Top-p", 0.95, FloatRange::Linear { min: 0.1, max: 1.0 })
                .with_step_size(0.01)
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            variations: IntParam::new("Variations", 1, IntRange::Linear { min: 1, max: 8 }),
            variation: IntParam::new("Variation", 1, IntRange::Linear { min: 1, max: 8 }),
            density: FloatParam::new("Density", 0.0, FloatRange::Linear { min: 0.0, max: 8.0 })
                .with_step_size(0.01)
                .with_value_to_string(std::sync::Arc::new(|value| {
                    if value <= 0.0 {
                        DENSITY_MODEL.into()
                    } else {
                        format!("{value:.2}{DENSITY_UNIT}")
                    }
                }))
                .with_string_to_value(std::sync::Arc::new(|text| {
                    let text = text.trim();
                    if text.eq_ignore_ascii_case(DENSITY_MODEL) {
                        return Some(0.0);
                    }
                    text.trim_end_matches(DENSITY_UNIT.trim())
                        .trim()
                        .parse()
                        .ok()
                })),
            key_lock: EnumParam::new("Key Lock", KeyLockParam::Off),
            key_root: IntParam::new("Key Root", 0, IntRange::Linear { min: 0, max: 11 })
                .with_value_to_string(std::sync::Arc::new(|value| {
                    nice_plug::util::KEYS[value.clamp(0, 11) as usize].into()
                }))
                .with_string_to_value(std::sync::Arc::new(|text| {
                    let text = text.trim();
                    nice_plug::util::KEYS
                        .iter()
                        .position(|name| name.eq_ignore_ascii_case(text))
                        .map(|index| index as i32)
                })),
            key_mode: EnumParam::new("Key Mode", KeyModeParam::Major),
            // Lowest above Highest is taken as the range between them (reported when used).
            pitch_low: IntParam::new("Lowest Note", 36, IntRange::Linear { min: 0, max: 127 })
                .with_value_to_string(formatters::v2s_i32_key_formatter())
                .with_string_to_value(formatters::s2v_i32_key_formatter()),
            pitch_high: IntParam::new("Highest Note", 96, IntRange::Linear { min: 0, max: 127 })
                .with_value_to_string(formatters::v2s_i32_key_formatter())
                .with_string_to_value(formatters::s2v_i32_key_formatter()),
            velocity_scale: FloatParam::new(
                "Velocity",
                1.0,
                FloatRange::Linear { min: 0.0, max: 2.0 },
            )
            .with_step_size(0.01)
            .with_unit("%")
            .with_value_to_string(formatters::v2s_f32_percentage(0))
            .with_string_to_value(formatters::s2v_f32_percentage()),
            quantize: EnumParam::new("Quantize", QuantizeParam::Off),
            history_bars: IntParam::new("History", 8, IntRange::Linear { min: 1, max: 64 })
                .with_unit(" bars"),
            thru: BoolParam::new("Thru", true),
            listen: EnumParam::new("Listen", ListenParam::Midi),
            heard_out: BoolParam::new("Audio to MIDI", false),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            model: choice.param("Model", 0, &model_name),
            model_name,
            editor_size: crate::editor::saved_size(820.0, 720.0),
            texture: EnumParam::new("Texture", TextureParam::AsPlayed),
            follow_input: BoolParam::new("Follow Input", true),
        }
    }
}

impl PhraseParams {
    /// The key lock the parameters describe.
    pub fn key_lock(&self) -> KeyLock {
        match self.key_lock.value() {
            KeyLockParam::Off => KeyLock::Off,
            KeyLockParam::Detect => KeyLock::Detect,
            KeyLockParam::Set => {
                let root = self.key_root.value().clamp(0, 11) as u8;
                KeyLock::Fixed(match self.key_mode.value() {
                    KeyModeParam::Major => Scale::major(root),
                    KeyModeParam::Minor => Scale::natural_minor(root),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_model_name_is_in_the_session_state() {
        let params = PhraseParams::default();
        let fields = params.serialize_fields();
        assert_eq!(
            fields.get(MODEL_NAME_KEY).map(String::as_str),
            Some("\"auto\""),
            "the default model is choice 0"
        );
        assert_eq!(params.model.to_string(), "auto");
    }

    /// Every parameter, over its whole range (every step of a stepped one, a dense sweep of a
    /// continuous one), as clap-validator's `param-conversions` checks it: value → text → value
    /// → text gives the same text and the same value, with and without the unit.
    #[test]
    fn every_value_text_reads_back_as_the_same_value() {
        let params = PhraseParams::default();
        for (id, param, _) in params.param_map() {
            // SAFETY: the pointers point into `params`, alive for the whole test.
            let (steps, name) = unsafe { (param.step_count(), param.name().to_owned()) };
            let values: Vec<f32> = match steps {
                Some(steps) => (0..=steps).map(|s| s as f32 / steps as f32).collect(),
                None => (0..=2000).map(|s| s as f32 / 2000.0).collect(),
            };
            for normalized in values {
                for include_unit in [true, false] {
                    // SAFETY: as above.
                    let text =
                        unsafe { param.normalized_value_to_string(normalized, include_unit) };
                    let read = unsafe { param.string_to_normalized_value(&text) };
                    let Some(read) = read else {
                        panic!("{id} ({name}): `{text}` does not read back");
                    };
                    let again = unsafe { param.normalized_value_to_string(read, include_unit) };
                    assert_eq!(
                        again, text,
                        "{id} ({name}): {normalized} -> `{text}` -> {read}"
                    );
                    let read_again = unsafe { param.string_to_normalized_value(&again) };
                    assert_eq!(read_again, Some(read), "{id} ({name}): `{again}`");
                    // The value itself survives (its plain value, to the step). The Model
                    // parameter keeps two steps even with one model installed, and both pick
                    // (and show) that model: for it, the model picked is the value.
                    let (plain, read_plain) =
                        unsafe { (param.preview_plain(normalized), param.preview_plain(read)) };
                    if id == MODEL_ID {
                        let choice = model_choice();
                        assert_eq!(
                            choice.index(plain as i32),
                            choice.index(read_plain as i32),
                            "{id}: `{text}`"
                        );
                        continue;
                    }
                    assert!(
                        (plain - read_plain).abs() <= 1e-4 * plain.abs().max(1.0),
                        "{id} ({name}): {plain} -> `{text}` -> {read_plain}"
                    );
                }
            }
        }
    }
}
