#![cfg(feature = "train")]
//! Bad files in the data folder are reported by name and skipped; loading goes on.

mod timbre_support;

use continuo::train::timbre::data::load_folder;
use continuo::train::timbre::timbre_feature_config;

#[test]
fn bad_wavs_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(dir.path(), 2);
    std::fs::write(
        dir.path().join("broken.wav"),
        b"RIFF this is not a wav file",
    )
    .unwrap();
    timbre_support::write_wav(
        &dir.path().join("short.wav"),
        &timbre_support::harmonic_tone(0.2, 300.0, 0),
    );
    timbre_support::write_wav(&dir.path().join("silent.wav"), &vec![0.0; 20000]);
    let loaded = load_folder(dir.path(), &timbre_feature_config(), 16_000, |_| {}).unwrap();
    assert_eq!(loaded.clips.len(), 2);
    let mut names: Vec<String> = loaded
        .skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["broken.wav", "short.wav", "silent.wav"]);
    assert!(loaded.skipped.iter().all(|s| !s.reason.is_empty()));
    // A folder with only bad files is an error that names them.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("x.wav"), b"nope").unwrap();
    let err = load_folder(bad.path(), &timbre_feature_config(), 16_000, |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("x.wav"), "{err:#}");
}

#[test]
fn a_full_band_model_refuses_audio_recorded_below_its_rate() {
    // Up-sampled 16 kHz audio is silent above 8 kHz: a 48 kHz model must not learn that.
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(dir.path(), 2);
    let err = load_folder(dir.path(), &timbre_feature_config(), 48_000, |_| {}).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("tone0.wav"), "{text}");
    assert!(
        text.contains("recorded at 16000 Hz, below the 48000 Hz"),
        "{text}"
    );
}
