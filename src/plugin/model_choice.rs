//! A parameter that picks a model by index, with the model's *name* saved in the session.
//!
//! Parameters are fixed when a plugin is constructed, so each plugin scans its model list once
//! per process and every instance agrees on what an index means. Models added or removed later
//! would make a saved index point at another model, so the chosen name is saved too (a
//! `#[persist]` field, [`SavedModelName`]) and mapped back to an index before the session's
//! parameters are restored ([`ModelChoice::restore`], called from `Plugin::filter_state`).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use nice_plug::params::persist::PersistentField;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;

/// What a model parameter without an "Off" value shows when no model is installed.
const NO_MODEL: &str = "(no model)";

/// A model list and how parameter values map onto it.
#[derive(Debug, Clone, Copy)]
pub struct ModelChoice {
    choices: &'static [String],
    /// Parameter value of the first model; the values below it mean "none" (Style B's Off).
    first: i32,
}

impl ModelChoice {
    /// Values `first..` pick `choices` in order; values below `first` pick none.
    pub const fn new(choices: &'static [String], first: i32) -> Self {
        Self { choices, first }
    }

    /// The models.
    pub fn choices(&self) -> &'static [String] {
        self.choices
    }

    /// The model a parameter value picks: `None` below `first` or with no models; values past
    /// the list pick the last model (the range always has two steps or more).
    pub fn index(&self, value: i32) -> Option<usize> {
        let offset = usize::try_from(value - self.first).ok()?;
        (!self.choices.is_empty()).then(|| offset.min(self.choices.len() - 1))
    }

    /// The model name a parameter value picks.
    pub fn name(&self, value: i32) -> Option<&'static str> {
        self.index(value).map(|i| self.choices[i].as_str())
    }

    /// An `IntParam` over the list whose value is mirrored into `saved` (lock-free: the
    /// callback may run on the audio thread), shown and typed as model names.
    pub fn param(&self, name: &str, default: i32, saved: &SavedModelName) -> IntParam {
        let (choice, show, parse) = (*self, *self, *self);
        let mirror = saved.value.clone();
        mirror.store(default, Ordering::Relaxed);
        let max = (self.first + self.choices.len() as i32 - 1).max(self.first + 1);
        IntParam::new(name, default, IntRange::Linear { min: 0, max })
            .with_callback(Arc::new(move |value| {
                mirror.store(value, Ordering::Relaxed)
            }))
            .with_value_to_string(Arc::new(move |value| {
                show.name(value).map_or_else(
                    || if choice.first > 0 { "Off" } else { NO_MODEL }.to_owned(),
                    str::to_owned,
                )
            }))
            .with_string_to_value(Arc::new(move |text| {
                let text = text.trim();
                if parse.first > 0 && text.eq_ignore_ascii_case("off") {
                    return Some(0);
                }
                // What an empty list shows must read back (hosts round-trip every text).
                if parse.choices.is_empty() && text == NO_MODEL {
                    return Some(0);
                }
                parse
                    .choices
                    .iter()
                    .position(|name| name == text)
                    .map(|i| i as i32 + parse.first)
            }))
    }

    /// Before a session's state is loaded: points parameter `param_id` at the index the name
    /// saved under `name_key` has now. A name no longer installed picks value 0 (the default
    /// model, or "none"), logged; "" is "none"; states saved without a name keep their index,
    /// and so do states whose index still picks the saved name (values past the list pick the
    /// last model too: rewriting them would make save → load → save change the state).
    pub fn restore(&self, state: &mut PluginState, param_id: &str, name_key: &str, plugin: &str) {
        let Some(saved) = state
            .fields
            .get(name_key)
            .and_then(|json| serde_json::from_str::<String>(json).ok())
        else {
            return;
        };
        if let Some(ParamValue::I32(value)) = state.params.get(param_id) {
            if self.name(*value).unwrap_or_default() == saved {
                return;
            }
        }
        let value = match self.choices.iter().position(|name| *name == saved) {
            Some(index) => index as i32 + self.first,
            None if saved.is_empty() => 0,
            None => {
                nice_log!("{plugin}: the session's model `{saved}` is not installed");
                0
            }
        };
        state.params.insert(param_id.into(), ParamValue::I32(value));
    }
}

/// The chosen model's name as a `#[persist]` field; it follows the parameter through the
/// atomic [`ModelChoice::param`]'s callback sets.
pub struct SavedModelName {
    choice: ModelChoice,
    value: Arc<AtomicI32>,
}

impl SavedModelName {
    /// A field for `choice` (the parameter built with it keeps it current).
    pub fn new(choice: ModelChoice) -> Self {
        Self {
            choice,
            value: Arc::new(AtomicI32::new(0)),
        }
    }
}

impl<'a> PersistentField<'a, String> for SavedModelName {
    /// Nothing to do: [`ModelChoice::restore`] already pointed the parameter at the name.
    fn set(&self, _name: String) {}

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&String) -> R,
    {
        let name = self
            .choice
            .name(self.value.load(Ordering::Relaxed))
            .unwrap_or_default()
            .to_owned();
        f(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn models() -> &'static [String] {
        static MODELS: OnceLock<Vec<String>> = OnceLock::new();
        MODELS.get_or_init(|| ["default", "bach-b", "jazz"].map(String::from).to_vec())
    }

    fn state(params: &[(&str, i32)], fields: &[(&str, &str)]) -> PluginState {
        PluginState {
            version: String::new(),
            params: params
                .iter()
                .map(|(id, value)| ((*id).to_owned(), ParamValue::I32(*value)))
                .collect(),
            fields: fields
                .iter()
                .map(|(key, json)| ((*key).to_owned(), (*json).to_owned()))
                .collect(),
        }
    }

    fn restored(choice: ModelChoice, index: i32, saved: Option<&str>) -> i32 {
        let fields: Vec<(&str, &str)> = saved.map(|s| ("name", s)).into_iter().collect();
        let mut state = state(&[("model", index)], &fields);
        choice.restore(&mut state, "model", "name", "test");
        match state.params["model"] {
            ParamValue::I32(v) => v,
            _ => unreachable!("an int parameter"),
        }
    }

    #[test]
    fn a_session_finds_its_model_by_name_whatever_the_index() {
        let a = ModelChoice::new(models(), 0);
        // Saved when `jazz` was index 1; on this machine it is index 2.
        assert_eq!(restored(a, 1, Some("\"jazz\"")), 2);
        // No longer installed: the default, not whatever took its index.
        assert_eq!(restored(a, 1, Some("\"folk\"")), 0);
        // A session from before names were saved keeps its index.
        assert_eq!(restored(a, 1, None), 1);
        // A value past the list that still picks the saved name is kept as saved (restoring
        // it as index 2 would make a state saved again differ from the one loaded).
        assert_eq!(restored(a, 5, Some("\"jazz\"")), 5);
        // With an Off value first (Style B): names shift by one, "" is Off.
        let b = ModelChoice::new(models(), 1);
        assert_eq!(restored(b, 2, Some("\"jazz\"")), 3);
        assert_eq!(restored(b, 2, Some("\"\"")), 0);
    }

    #[test]
    fn values_map_to_names_and_the_saved_name_follows_the_parameter() {
        let a = ModelChoice::new(models(), 0);
        assert_eq!(a.name(-3), None);
        assert_eq!(a.name(0), Some("default"));
        assert_eq!(a.name(7), Some("jazz"), "past the list: the last model");
        let b = ModelChoice::new(models(), 1);
        assert_eq!(b.name(0), None);
        assert_eq!(b.name(1), Some("default"));

        let saved = SavedModelName::new(b);
        let param = b.param("Style B", 0, &saved);
        assert_eq!(param.to_string(), "Off");
        assert_eq!(saved.map(String::clone), "");
        assert_eq!(param.string_to_normalized_value("jazz"), Some(1.0));
        assert_eq!(param.normalized_value_to_string(1.0, false), "jazz");
        saved.value.store(3, Ordering::Relaxed);
        assert_eq!(saved.map(String::clone), "jazz");
        assert!(ModelChoice::new(&[], 0).name(0).is_none());
    }
}
