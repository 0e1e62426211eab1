//! The built bundle carries ONNX Runtime and the plugin finds it beside its own file (not via
//! the host or the environment): a copy of the bundle in a temporary directory is loaded in a
//! CLAP host, and the plugin's log says which runtime it picked up. Without the runtime next to
//! it, the plugin falls back to tract and says why.
//!
//! One test per process: this binary sets process-wide environment variables.

mod clap_support;

use std::path::Path;
use std::time::{Duration, Instant};

use clack_host::prelude::*;
use clap_support::*;

/// Loads `bundle` with its log sent to `log`, activates Continuo Style, and returns the log
/// line naming the model backend.
fn activate_and_read_backend(bundle: &Path, log: &Path) -> String {
    std::env::set_var("NICE_LOG", log);
    let entry = load_bundle(bundle);
    let mut plugin = instance(&entry, STYLE_ID);
    let config = PluginAudioConfiguration {
        sample_rate: 48_000.0,
        min_frames_count: 1,
        max_frames_count: 256,
    };
    let processor = plugin.activate(|_, _| (), config).expect("activate");
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|line| line.contains("models run on")) {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no backend line in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    plugin.deactivate(processor);
    line
}

#[test]
fn bundle_loads_its_own_runtime_and_falls_back_to_tract_without_it() {
    // The runtime must come from the bundle, not from the test environment.
    std::env::remove_var("ORT_DYLIB_PATH");
    let dir = tempfile::tempdir().expect("tempdir");

    let with_runtime = copy_bundle(dir.path(), "WithRuntime", true);
    let line = activate_and_read_backend(&with_runtime, &dir.path().join("with.log"));
    let expected = dir.path().join("Continuo-data/libonnxruntime.so.1.31.1");
    assert!(line.contains("ONNX Runtime ("), "{line}");
    assert!(
        line.contains(&expected.display().to_string()),
        "loaded from the copy's own folder: {line}"
    );

    let bare_dir = tempfile::tempdir().expect("tempdir");
    let without_runtime = copy_bundle(bare_dir.path(), "WithoutRuntime", false);
    let line = activate_and_read_backend(&without_runtime, &bare_dir.path().join("without.log"));
    assert!(line.contains("tract (ONNX Runtime unavailable"), "{line}");
}
