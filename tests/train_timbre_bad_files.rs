#![cfg(feature = "train")]
//! Bad files in the data folder are reported by name and skipped; loading goes on.

mod timbre_support;

use continuo::train::timbre::data::load_folder;
use continuo::train::timbre::{timbre_feature_config, F0_MIN_HZ};

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
    let loaded = load_folder(
        dir.path(),
        &timbre_feature_config(F0_MIN_HZ),
        16_000,
        |_| {},
    )
    .unwrap();
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
    let err = load_folder(
        bad.path(),
        &timbre_feature_config(F0_MIN_HZ),
        16_000,
        |_| {},
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("x.wav"), "{err:#}");
}

#[test]
fn a_full_band_model_refuses_audio_recorded_below_its_rate() {
    // Up-sampled 16 kHz audio is silent above 8 kHz: a 48 kHz model must not learn that.
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(dir.path(), 2);
    let err = load_folder(
        dir.path(),
        &timbre_feature_config(F0_MIN_HZ),
        48_000,
        |_| {},
    )
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("tone0.wav"), "{text}");
    assert!(
        text.contains("recorded at 16000 Hz, below the 48000 Hz"),
        "{text}"
    );
}

#[test]
fn a_low_f0_floor_tracks_the_notes_below_100_hz_and_an_absurd_one_is_refused() {
    // A cello's low notes: at 100 Hz the analysis cannot hold a 72 Hz period; trained from
    // 64 Hz (the cello's floor) it tracks it.
    let dir = tempfile::tempdir().unwrap();
    let low = timbre_support::harmonic_tone(1.5, 72.0, 0);
    timbre_support::write_wav(&dir.path().join("low.wav"), &low);
    let median_voiced_f0 = |floor: f32| {
        let loaded = load_folder(dir.path(), &timbre_feature_config(floor), 16_000, |_| {});
        let clip = loaded.expect("loads").clips.remove(0);
        let mut f0: Vec<f32> = clip
            .raw_f0_hz
            .iter()
            .zip(&clip.voiced)
            .filter(|(_, &v)| v)
            .map(|(&f, _)| f)
            .collect();
        f0.sort_by(f32::total_cmp);
        (f0.len(), f0.get(f0.len() / 2).copied())
    };
    let (voiced, median) = median_voiced_f0(64.0);
    assert!(voiced > 250, "{voiced} voiced frames of 375");
    let median = median.expect("voiced");
    assert!((median - 72.0).abs() < 3.0, "median f0 {median}");
    let (_, at_100) = median_voiced_f0(F0_MIN_HZ);
    assert!(
        at_100.is_none_or(|f| (f - 72.0).abs() > 10.0),
        "a 100 Hz floor cannot see 72 Hz: {at_100:?}"
    );

    let config = timbre_support::tiny_config(1).with_f0_min_hz(20.0);
    let err = continuo::train::timbre::train_timbre(
        &continuo::train::timbre::TimbreTrainArgs::new(dir.path(), dir.path().join("m"), config),
    )
    .expect_err("refused");
    assert!(format!("{err:#}").contains("--f0-min-hz"), "{err:#}");
}
