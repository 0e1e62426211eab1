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

/// Loads the built bundle, with the plugin log and the user's model folder in [`run_dir`].
fn entry() -> PluginEntry {
    run_dir();
    load_bundle(&built_bundle())
}

/// This run's files, set before any bundle is loaded: the plugin log ([`log_file`]) and the
/// user's model folder ([`user_models`], empty until a test installs a model). Under target/
/// and emptied at the start of each run (a temporary directory in a static is never removed:
/// statics are not dropped).
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clap-state");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data/continuo/models")).expect("user model folder");
        std::env::set_var("XDG_DATA_HOME", dir.join("data"));
        std::env::set_var("NICE_LOG", dir.join("plugin.log"));
        dir
    })
}

/// The user's model folder the plugins scan.
fn user_models() -> PathBuf {
    run_dir().join("data/continuo/models")
}

/// The log file every test here shares.
fn log_file() -> PathBuf {
    run_dir().join("plugin.log")
}

/// The log once `said` holds for it, or after five seconds (a background thread writes it).
fn log_once(said: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let logged = std::fs::read_to_string(log_file()).unwrap_or_default();
        if said(&logged) || std::time::Instant::now() > deadline {
            return logged;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
    // A model parameter's number is its place in today's model list, which grows as models
    // are added: the session keeps the model it named, so compare names.
    let saved_names: serde_json::Value =
        serde_json::from_slice(&bytes[8..]).expect("state is JSON");
    let model_params = [
        ("Style", "style-name"),
        ("Style B", "style-b-name"),
        ("Model", "model-name"),
    ];
    let mut expected = expected;
    for (param, field) in model_params {
        let Some(saved) = saved_names["fields"][field].as_str() else {
            continue;
        };
        let saved: String = serde_json::from_str(saved).expect("a saved name is JSON text");
        let id = param_id(&mut plugin, param);
        assert_eq!(
            param_text(&mut plugin, id, now[param]),
            saved,
            "{name}: `{param}` after loading a 0.1.0 session"
        );
        expected.remove(param);
    }
    for (param, value) in &expected {
        // Hosts see plain values through the f32 normalised value, so an integer parameter
        // whose range grew since 0.1.0 (more model slots) reads back within f32 precision.
        let loaded = now.get(param).copied().unwrap_or(f64::NAN);
        assert!(
            (loaded - value).abs() <= 1e-6 * value.abs().max(1.0),
            "{name}: `{param}` after loading a 0.1.0 session: {loaded}, saved {value}"
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

/// Auto Level, added after 0.1.0, is on in a new instance and off in an old session, which
/// played the input at its own level and must sound as it did.
#[test]
fn style_sessions_saved_before_auto_level_keep_it_off() {
    let entry = entry();
    let auto_level = |plugin: &mut PluginInstance<()>| {
        values(plugin)
            .get("Auto Level")
            .copied()
            .expect("Style has an Auto Level parameter")
    };
    assert_eq!(auto_level(&mut instance(&entry, STYLE_ID)), 1.0);
    let mut old = instance(&entry, STYLE_ID);
    load(
        &mut old,
        &std::fs::read(fixture("style", "state")).expect("state fixture"),
    );
    assert_eq!(auto_level(&mut old), 0.0);
}

#[test]
fn phrase_sessions_saved_by_0_1_0_load() {
    old_sessions_load(PHRASE_ID);
}

/// The saved state with the model name under `key` replaced by `model`.
fn naming_model(name: &str, key: &str, model: &str) -> Vec<u8> {
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
        serde_json::Value::String(serde_json::to_string(model).expect("json")),
    );
    let json = serde_json::to_vec(&state).expect("json");
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes
}

#[test]
fn a_session_whose_model_is_gone_loads_the_default_and_says_so() {
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
        load(&mut plugin, &naming_model(name, key, "no-such-model"));
        assert_eq!(
            values(&mut plugin)[param],
            default,
            "{name}: a missing model falls back to the default"
        );
        let said_so = |log: &str| log.matches("`no-such-model` is not installed").count() > said;
        let logged = log_once(said_so);
        assert!(said_so(&logged), "{name}: the log says why:\n{logged}");
    }
}

#[test]
fn a_session_naming_a_model_installed_after_the_host_started_plays_it() {
    let entry = entry();
    // The Style parameters are made with the first instance, before the model is installed.
    let mut plugin = instance(&entry, STYLE_ID);
    let repo_models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    for ext in ["json", "onnx"] {
        std::fs::copy(
            repo_models.join(format!("continuo-flute.{ext}")),
            user_models().join(format!("installed-later.{ext}")),
        )
        .expect("install a model");
    }
    load(
        &mut plugin,
        &naming_model("style", "style-name", "installed-later"),
    );
    let saved_again: serde_json::Value =
        serde_json::from_slice(&save(&mut plugin)[8..]).expect("state is JSON");
    assert_eq!(
        saved_again["fields"]["style-name"],
        serde_json::json!(serde_json::to_string("installed-later").expect("json")),
        "the model has a place among the Style parameter's values: {saved_again}"
    );
    let config = PluginAudioConfiguration {
        sample_rate: 48_000.0,
        min_frames_count: 1,
        max_frames_count: 256,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let playing = |log: &str| log.contains("playing installed-later");
    let logged = log_once(playing);
    assert!(
        playing(&logged),
        "activation loads the session's model:\n{logged}"
    );
    plugin.deactivate(processor);
}
