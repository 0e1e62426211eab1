//! Continuo Voice with no timbre model installed (a bundle copied without its data, an empty
//! user folder): it activates, plays silence whatever it is sent, and its log says why.
//!
//! One test per process: it sets the process-wide `NICE_LOG` and `XDG_DATA_HOME`.

mod clap_support;

use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clap_support::*;

#[test]
fn without_a_model_voice_is_silent_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("voice.log");
    std::env::set_var("NICE_LOG", &log);
    std::env::set_var("XDG_DATA_HOME", dir.path().join("empty-data-home"));
    let bundle = copy_bundle(dir.path(), "VoiceWithoutModels", false);
    let entry = load_bundle(&bundle);
    let mut plugin = instance(&entry, VOICE_ID);
    let processor = activate_offline(&mut plugin, 48_000.0, 256);
    let (processor, out) = play_voice(processor, 256, 100, |index, input| {
        let key = Pckn::new(0u16, 0u16, 60u16, Match::All);
        match index {
            5 => input.push(&NoteOnEvent::new(3, key, 0.9)),
            50 => input.push(&NoteOffEvent::new(0, key, 0.0)),
            _ => {}
        }
    });
    plugin.deactivate(processor);
    assert!(out.iter().all(|&x| x == 0.0), "silence without a model");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("Continuo Voice: no timbre model found"),
        "the log says why:\n{text}"
    );
}
