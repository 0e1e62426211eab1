//! Sessions round-trip in a CLAP host (clack-host's state extension, on the built bundle): for
//! every plugin every parameter is moved off its default, saved, and loaded into a new
//! instance, which must show the same values and save the same bytes; a session saved by
//! version 0.1.0 (fixtures recorded from that build) still loads with its values; and a session
//! whose model is no longer installed loads with the default model and says so in the log.
//!
//! `CONTINUO_WRITE_STATE_FIXTURES=1 cargo test --test clap_state` records the fixtures again
//! (only when the saved format changes on purpose: old fixtures are what old sessions look like).
//! The plugin log (`NICE_LOG`, read once per process when the bundle is first loaded) goes to
//! one file for all tests here.

mod clap_support;

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clack_extensions::params::PluginParams;
use clack_extensions::state::PluginState;
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;
use clap_support::*;

/// Loads the built bundle, with the plugin log going to this test binary's log file.
fn entry() -> PluginEntry {
    log_file();
    load_bundle(&built_bundle())
}

/// The log file every test here shares; set before any bundle is loaded.
fn log_file() -> &'static Path {
    static LOG: OnceLock<PathBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("continuo-clap-state-{}.log", std::process::id()));
        std::env::set_var("NICE_LOG", &path);
        path
    })
}

/// Parameter values by name.
type Values = BTreeMap<String, f64>;

fn fixture(plugin: &str, ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/state/{plugin}-0.1.0.{ext}"))
}

/// Every parameter's current value, by name.
fn values(plugin: &mut PluginInstance<()>) -> Values {
    let ids = settable_params(plugin);
    let handle = plugin.plugin_handle();
    let params: PluginParams = handle.get_extension().expect("params extension");
    ids.into_iter()
        .map(|param| {
            let value = params.get_value(&handle, param.id).expect("get_value");
            (param.name, value)
        })
        .collect()
}

/// Where a test puts every parameter: a value from (min, max, default, stepped).
type Pick = fn(f64, f64, f64, bool) -> f64;

/// Away from the default: the far end of a stepped range, an interior point otherwise.
const OFF_DEFAULT: Pick = |min, max, default, stepped| match stepped {
    true if default == max => min,
    true => max,
    false => min + 0.37 * (max - min),
};

/// Ends and a third of the way (past-the-list model choices, inverted note ranges, …).
const EXTREMES: [(&str, Pick); 3] = [
    ("maximum", |_, max, _, _| max),
    ("minimum", |min, _, _, _| min),
    ("a third", |min, max, _, _| min + (max - min) / 3.0),
];

/// Sets every parameter to `pick`, through the host's parameter flush (plugin inactive).
fn set_every_param(plugin: &mut PluginInstance<()>, pick: Pick) {
    let events: Vec<ParamValueEvent> = settable_params(plugin)
        .into_iter()
        .map(|p| {
            let value = pick(p.min, p.max, p.default, p.stepped);
            ParamValueEvent::new(0, p.id, Pckn::match_all(), value)
        })
        .collect();
    let params: PluginParams = plugin
        .plugin_handle()
        .get_extension()
        .expect("params extension");
    let mut output = EventBuffer::new();
    let mut handle = plugin.inactive_plugin_handle().expect("inactive");
    params.flush(
        &mut handle,
        &InputEvents::from_buffer(&events),
        &mut OutputEvents::from_buffer(&mut output),
    );
}

fn save(plugin: &mut PluginInstance<()>) -> Vec<u8> {
    let handle = plugin.plugin_handle();
    let state: PluginState = handle.get_extension().expect("state extension");
    let mut bytes = Vec::new();
    state.save(&handle, &mut bytes).expect("save state");
    bytes
}

fn load(plugin: &mut PluginInstance<()>, bytes: &[u8]) {
    let handle = plugin.plugin_handle();
    let state: PluginState = handle.get_extension().expect("state extension");
    state
        .load(&handle, &mut std::io::Cursor::new(bytes))
        .expect("load state");
}

/// Save → load into a new instance → same values, and save again → the same bytes
/// (clap-validator's state-reproducibility), with every parameter moved off its default and at
/// the ends of its range.
fn round_trips(id: &CStr) {
    let entry = entry();
    let mut original = instance(&entry, id);
    let defaults = values(&mut original);
    set_every_param(&mut original, OFF_DEFAULT);
    let moved = values(&mut original);
    let unchanged: Vec<&String> = moved
        .iter()
        .filter(|(name, value)| defaults[*name] == **value)
        .map(|(name, _)| name)
        .collect();
    // With one model installed a model choice has nowhere else to go; everything else moves.
    assert!(
        unchanged.len() <= 2,
        "{id:?}: parameters that did not move off their default: {unchanged:?}"
    );
    let saved = save(&mut original);
    if std::env::var_os("CONTINUO_WRITE_STATE_FIXTURES").is_some() {
        let name = short_name(id);
        std::fs::create_dir_all(fixture(name, "state").parent().expect("dir")).expect("mkdir");
        std::fs::write(fixture(name, "state"), &saved).expect("write fixture");
        std::fs::write(
            fixture(name, "values.json"),
            serde_json::to_string_pretty(&moved).expect("json"),
        )
        .expect("write fixture values");
    }

    for (what, pick) in [("off its default", OFF_DEFAULT)]
        .into_iter()
        .chain(EXTREMES)
    {
        let mut first = instance(&entry, id);
        set_every_param(&mut first, pick);
        let values_set = values(&mut first);
        let saved = save(&mut first);
        let mut restored = instance(&entry, id);
        load(&mut restored, &saved);
        assert_eq!(
            values(&mut restored),
            values_set,
            "{id:?}, every parameter at {what}: values after load"
        );
        let saved_again = save(&mut restored);
        assert!(
            saved_again == saved,
            "{id:?}, every parameter at {what}: save → load → save changed the bytes:\n{}\n{}",
            String::from_utf8_lossy(&saved),
            String::from_utf8_lossy(&saved_again)
        );
    }
}

fn short_name(id: &CStr) -> &'static str {
    if id == STYLE_ID {
        "style"
    } else if id == VOICE_ID {
        "voice"
    } else {
        "phrase"
    }
}

/// A session saved by 0.1.0 loads: every parameter it saved has its saved value.
fn old_sessions_load(id: &CStr) {
    let name = short_name(id);
    let bytes = std::fs::read(fixture(name, "state")).expect("state fixture");
    let expected: Values = serde_json::from_str(
        &std::fs::read_to_string(fixture(name, "values.json")).expect("values fixture"),
    )
    .expect("values fixture JSON");
    let entry = entry();
    let mut plugin = instance(&entry, id);
    load(&mut plugin, &bytes);
    let now = values(&mut plugin);
    for (param, value) in &expected {
        assert_eq!(
            now.get(param),
            Some(value),
            "{name}: `{param}` after loading a 0.1.0 session"
        );
    }
}

#[test]
fn style_sessions_round_trip() {
    round_trips(STYLE_ID);
}

#[test]
fn phrase_sessions_round_trip() {
    round_trips(PHRASE_ID);
}

#[test]
fn voice_sessions_round_trip() {
    round_trips(VOICE_ID);
}

#[test]
fn style_sessions_saved_by_0_1_0_load() {
    old_sessions_load(STYLE_ID);
}

#[test]
fn phrase_sessions_saved_by_0_1_0_load() {
    old_sessions_load(PHRASE_ID);
}

/// The saved state with the model name under `key` replaced by one that is not installed.
fn with_missing_model(name: &str, key: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(name, "state")).expect("state fixture");
    // nice-plug's CLAP state: the JSON's length (u64, little-endian), then the JSON.
    let mut state: serde_json::Value =
        serde_json::from_slice(bytes.get(8..).expect("length prefix")).expect("state is JSON");
    let fields = state
        .get_mut("fields")
        .and_then(|fields| fields.as_object_mut())
        .expect("persisted fields");
    assert!(fields.contains_key(key), "{name} saves `{key}`: {fields:?}");
    fields.insert(
        key.into(),
        serde_json::Value::String(serde_json::to_string("no-such-model").expect("json")),
    );
    let json = serde_json::to_vec(&state).expect("json");
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes
}

#[test]
fn a_session_whose_model_is_gone_loads_the_default_and_says_so() {
    let log = log_file();
    let entry = entry();
    for (said, (id, name, key, param)) in [
        (STYLE_ID, "style", "style-name", "Style"),
        (PHRASE_ID, "phrase", "model-name", "Model"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut fresh = instance(&entry, id);
        let default = values(&mut fresh)[param];
        let mut plugin = instance(&entry, id);
        load(&mut plugin, &with_missing_model(name, key));
        assert_eq!(
            values(&mut plugin)[param],
            default,
            "{name}: a missing model falls back to the default"
        );
        // The log is written by a background thread: give it a moment.
        let said_so = |log: &str| log.matches("`no-such-model` is not installed").count() > said;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut logged = String::new();
        while !said_so(&logged) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            logged = std::fs::read_to_string(log).unwrap_or_default();
        }
        assert!(said_so(&logged), "{name}: the log says why:\n{logged}");
    }
}
