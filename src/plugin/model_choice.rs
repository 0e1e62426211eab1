//! A parameter that picks a model by index, with the model's *name* saved in the session.
//!
//! Parameters are fixed when a plugin is constructed, so each plugin scans its model list once
//! per process and every instance agrees on what an index means. A list may end in empty
//! slots that models installed later take, in order, when they are first asked for
//! ([`ModelList::find`]: the editor's Refresh, or a session naming them): indexes never move
//! while the process runs. Models added or removed between sessions would make a saved index
//! point at another model, so the chosen name is saved too (a `#[persist]` field,
//! [`SavedModelName`]) and mapped back to an index before the session's parameters are restored
//! ([`ModelChoice::restore`], called from `Plugin::filter_state`).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nice_plug::params::persist::PersistentField;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;

/// What a model parameter without an "Off" value shows when no model is installed.
const NO_MODEL: &str = "(no model)";

/// The models a parameter chooses from: those found when the list was made, then `spare`
/// slots for models found later. Reading is lock-free (the audio thread's parameter callbacks
/// and the host's text queries read names); filling a slot takes a lock on the main thread.
pub struct ModelList {
    found: Vec<String>,
    later: Box<[OnceLock<String>]>,
    /// Scans the model folders again, for [`ModelList::find`].
    scan: fn() -> Vec<String>,
    /// Serialises filling slots, so two editors refreshing at once cannot add a name twice.
    filling: Mutex<()>,
}

impl ModelList {
    /// The models `scan` finds now, and `spare` empty slots for models it finds later.
    pub fn scanned(scan: fn() -> Vec<String>, spare: usize) -> Self {
        Self {
            found: scan(),
            later: (0..spare).map(|_| OnceLock::new()).collect(),
            scan,
            filling: Mutex::new(()),
        }
    }

    /// A list of `names` and `spare` slots that no scan fills.
    #[cfg(test)]
    pub(crate) fn fixed(names: &[&str], spare: usize) -> Self {
        let mut list = Self::scanned(Vec::new, spare);
        list.found = names.iter().map(|name| (*name).to_owned()).collect();
        list
    }

    /// Number of places, filled or not.
    pub fn slots(&self) -> usize {
        self.found.len() + self.later.len()
    }

    /// The model at place `index`; `None` for an empty slot or past the end.
    pub fn get(&self, index: usize) -> Option<&str> {
        match index.checked_sub(self.found.len()) {
            None => Some(self.found[index].as_str()),
            Some(later) => self.later.get(later)?.get().map(String::as_str),
        }
    }

    /// The models, in index order (empty slots skipped: they are all at the end).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.slots()).map_while(|index| self.get(index))
    }

    /// The models' names, owned (for an engine that outlives a borrow of the list).
    pub fn to_vec(&self) -> Vec<String> {
        self.names().map(str::to_owned).collect()
    }

    /// Whether a model installed from now on can still be given a place.
    pub fn has_free_slot(&self) -> bool {
        self.later.iter().any(|slot| slot.get().is_none())
    }

    /// Whether no model is installed (or found since).
    pub fn is_empty(&self) -> bool {
        self.get(0).is_none()
    }

    /// The place of model `name` (already listed).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names().position(|listed| listed == name)
    }

    /// The place of model `name`, giving it the next empty slot when a new scan of the model
    /// folders finds it. `None` when it is not installed, or no slot is left. Main thread only:
    /// it reads the folders.
    pub fn find(&self, name: &str) -> Option<usize> {
        if let Some(index) = self.position(name) {
            return Some(index);
        }
        if !(self.scan)().iter().any(|found| found == name) {
            return None;
        }
        let _filling = self
            .filling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another thread may have added it while this one scanned.
        if let Some(index) = self.position(name) {
            return Some(index);
        }
        let free = self.later.iter().position(|slot| slot.get().is_none())?;
        self.later[free].set(name.to_owned()).ok()?;
        Some(self.found.len() + free)
    }
}

/// A model list and how parameter values map onto it.
#[derive(Clone, Copy)]
pub struct ModelChoice {
    list: &'static ModelList,
    /// Parameter value of the first model; the values below it mean "none" (Style B's Off).
    first: i32,
}

impl ModelChoice {
    /// Values `first..` pick `list`'s places in order; values below `first` pick none.
    pub const fn new(list: &'static ModelList, first: i32) -> Self {
        Self { list, first }
    }

    /// The models.
    pub fn list(&self) -> &'static ModelList {
        self.list
    }

    /// The parameter value that picks model `name`, giving it a slot if it was installed after
    /// the list was made (see [`ModelList::find`]); main thread only.
    pub fn value_of(&self, name: &str) -> Option<i32> {
        self.list.find(name).map(|index| index as i32 + self.first)
    }

    /// The place a parameter value picks: `None` below `first`, for an empty slot or with no
    /// models; values past the places pick the last (the range always has two steps or more).
    pub fn index(&self, value: i32) -> Option<usize> {
        let offset = usize::try_from(value - self.first).ok()?;
        let index = offset.min(self.list.slots().checked_sub(1)?);
        self.list.get(index).map(|_| index)
    }

    /// The model name a parameter value picks.
    pub fn name(&self, value: i32) -> Option<&'static str> {
        self.list.get(self.index(value)?)
    }

    /// What a parameter value shows: the model's name, "Off", an empty slot's place, or
    /// "(no model)" when nothing is installed and no slot can be filled.
    fn text(&self, value: i32) -> String {
        if let Some(name) = self.name(value) {
            return name.to_owned();
        }
        let Ok(offset) = usize::try_from(value - self.first) else {
            return "Off".to_owned();
        };
        match self.list.slots().checked_sub(1) {
            Some(last) if !self.list.later.is_empty() => {
                format!("(empty slot {})", offset.min(last) + 1)
            }
            _ => NO_MODEL.to_owned(),
        }
    }

    /// An `IntParam` over the list whose value is mirrored into `saved` (lock-free: the
    /// callback may run on the audio thread), shown and typed as model names.
    pub fn param(&self, name: &str, default: i32, saved: &SavedModelName) -> IntParam {
        let (show, parse) = (*self, *self);
        let mirror = saved.value.clone();
        mirror.store(default, Ordering::Relaxed);
        let max = (self.first + self.list.slots() as i32 - 1).max(self.first + 1);
        IntParam::new(name, default, IntRange::Linear { min: 0, max })
            .with_callback(Arc::new(move |value| {
                mirror.store(value, Ordering::Relaxed)
            }))
            .with_value_to_string(Arc::new(move |value| show.text(value)))
            .with_string_to_value(Arc::new(move |text| {
                // Every value's text reads back to it (hosts round-trip them); the range is a
                // few dozen values at most.
                let text = text.trim();
                let matching = |same: fn(&str, &str) -> bool| {
                    (0..=max).find(|value| same(&parse.text(*value), text))
                };
                matching(|a, b| a == b).or_else(|| matching(str::eq_ignore_ascii_case))
            }))
    }

    /// Before a session's state is loaded: points parameter `param_id` at the index the name
    /// saved under `name_key` has now (a model installed since the list was made takes an
    /// empty slot). A name no longer installed, or with no slot left, picks value 0 (the
    /// default model, or "none"), logged; "" is "none"; states saved without a name keep their
    /// index, and so do states whose index still picks the saved name (values past the list
    /// pick the last model too: rewriting them would make save → load → save change the state).
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
        if saved.is_empty() {
            state.params.insert(param_id.into(), ParamValue::I32(0));
            return;
        }
        let value = match self.value_of(&saved) {
            Some(value) => value,
            None => {
                nice_log!(
                    "{plugin}: the session's model `{saved}` is not installed (or was installed \
                     after the host started, and no free slot is left)"
                );
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

    fn models() -> &'static ModelList {
        static MODELS: OnceLock<ModelList> = OnceLock::new();
        MODELS.get_or_init(|| ModelList::fixed(&["default", "bach-b", "jazz"], 0))
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
        let nothing: &'static ModelList = Box::leak(Box::new(ModelList::fixed(&[], 0)));
        assert!(ModelChoice::new(nothing, 0).name(0).is_none());
    }

    #[test]
    fn models_installed_later_take_the_empty_slots_in_order() {
        static INSTALLED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        fn install(names: &[&str]) {
            let mut installed = INSTALLED.lock().unwrap();
            installed.extend(names.iter().map(|name| (*name).to_owned()));
        }
        fn scan() -> Vec<String> {
            INSTALLED.lock().unwrap().clone()
        }
        install(&["violin"]);
        let list: &'static ModelList = Box::leak(Box::new(ModelList::scanned(scan, 2)));
        let b = ModelChoice::new(list, 1);
        let saved = SavedModelName::new(b);
        let param = b.param("Style B", 0, &saved);
        assert_eq!(param.step_count(), Some(3), "Off, violin and two slots");
        assert_eq!(
            param.normalized_value_to_string(2.0 / 3.0, false),
            "(empty slot 2)"
        );
        assert_eq!(b.name(2), None, "an empty slot picks no model");
        assert_eq!(b.value_of("cello"), None, "not installed yet");

        install(&["cello", "flute", "oboe"]);
        assert_eq!(b.value_of("violin"), Some(1));
        assert_eq!(b.value_of("flute"), Some(2), "the first free slot");
        assert_eq!(b.value_of("cello"), Some(3));
        assert_eq!(b.value_of("flute"), Some(2), "found again in its slot");
        assert!(!list.has_free_slot());
        assert_eq!(b.value_of("oboe"), None, "no slot left");
        assert_eq!(param.normalized_value_to_string(2.0 / 3.0, false), "flute");
        assert_eq!(param.string_to_normalized_value("cello"), Some(1.0));
        assert_eq!(
            list.names().collect::<Vec<_>>(),
            ["violin", "flute", "cello"]
        );

        // A session naming a model installed after the list was made gives it a slot.
        let a_list: &'static ModelList = Box::leak(Box::new(ModelList::scanned(scan, 1)));
        let a = ModelChoice::new(a_list, 0);
        install(&["viola"]);
        assert_eq!(a_list.position("viola"), None);
        assert_eq!(
            restored(a, 0, Some("\"viola\"")),
            4,
            "after the four found at start-up"
        );
        assert_eq!(a.name(4), Some("viola"));
    }
}
