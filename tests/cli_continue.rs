//! `continuo continue` end to end with a generated token-step model.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use continuo::midi::Note;

fn continuo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_continuo"))
        .args(args)
        .output()
        .expect("run continuo")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn random_model(dir: &Path) -> PathBuf {
    common::random_continuation_model(dir, "tiny-phrase", 7, 32)
}

fn melody(dir: &Path, tempo: f64) -> PathBuf {
    let notes: Vec<Note> = [60u8, 62, 64, 65, 67, 65, 64, 62]
        .iter()
        .enumerate()
        .map(|(i, &p)| Note::new(p, 100, 0, i as f64 * 0.5, i as f64 * 0.5 + 0.45))
        .collect();
    let path = dir.join(format!("melody-{tempo}.mid"));
    continuo::midi::write(&path, &notes, tempo, 480).expect("write midi");
    path
}

#[test]
fn continues_a_melody_deterministically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path());
    let input = melody(dir.path(), 100.0);
    let out = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let run = continuo(&[
            "continue",
            input.to_str().unwrap(),
            "-o",
            path.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--bars",
            "2",
            "--seed",
            seed,
            "--key-lock",
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        path
    };
    let first = out("a.mid", "5");
    let again = out("b.mid", "5");
    let other = out("c.mid", "6");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&again).unwrap(),
        "same seed, same file"
    );
    assert_ne!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&other).unwrap(),
        "another seed differs"
    );

    let song = continuo::midi::read(&first).expect("output is valid MIDI");
    let notes = song.melodic_notes(None).expect("notes");
    let continued: Vec<&Note> = notes.iter().filter(|n| n.start_beat >= 4.0).collect();
    assert!(
        notes.len() > 8 && !continued.is_empty(),
        "input plus a continuation: {notes:?}"
    );
    assert!(
        continued.iter().all(|n| n.start_beat < 12.0),
        "two bars of 4/4 from beat 4"
    );
    let input_notes = continuo::midi::read(&input)
        .unwrap()
        .melodic_notes(None)
        .unwrap();
    let scale = continuo::midi::detect_key(&input_notes)
        .expect("key")
        .scale();
    assert!(
        continued.iter().all(|n| scale.contains(n.pitch)),
        "key lock keeps the input's key"
    );
    assert!(
        (song.tempo_map.bpm_at(0.0) - 100.0).abs() < 0.01,
        "tempo kept"
    );

    let run = continuo(&[
        "continue",
        input.to_str().unwrap(),
        "-o",
        dir.path().join("v.mid").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--variations",
        "3",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    for n in 1..=3 {
        assert!(dir.path().join(format!("v-{n}.mid")).exists());
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path());
    let model = model.to_str().unwrap();
    let out = dir.path().join("out.mid");
    let out = out.to_str().unwrap();
    let fails_with = |input: &Path, needle: &str| {
        let run = continuo(&[
            "continue",
            input.to_str().unwrap(),
            "-o",
            out,
            "--model",
            model,
        ]);
        assert!(!run.status.success(), "{} should fail", input.display());
        let message = stderr(&run);
        assert!(
            message.contains(needle),
            "expected `{needle}` in: {message}"
        );
    };

    let garbage = dir.path().join("garbage.mid");
    std::fs::write(&garbage, b"not a midi file at all").unwrap();
    fails_with(&garbage, "garbage.mid");

    let drums = dir.path().join("drums.mid");
    let hits: Vec<Note> = (0..8)
        .map(|i| Note::new(36, 100, 9, i as f64, i as f64 + 0.1))
        .collect();
    continuo::midi::write(&drums, &hits, 120.0, 480).unwrap();
    fails_with(&drums, "drums.mid");

    fails_with(&melody(dir.path(), 5.0), "outside 20–400 BPM");
    fails_with(&melody(dir.path(), 1000.0), "outside 20–400 BPM");

    let input = melody(dir.path(), 120.0);
    let run = continuo(&[
        "continue",
        input.to_str().unwrap(),
        "-o",
        out,
        "--model",
        "no-such-model",
    ]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("no continuation model named `no-such-model`"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn output_keeps_the_input_tempo_map_and_time_signature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path());
    // Eight eighth notes in 3/4 (last note-off at beat 3.95: the continuation starts at the
    // bar line at beat 6). Two tempo changes inside the phrase, one after the continuation
    // point that the output must not keep.
    let notes: Vec<Note> = [60u8, 62, 64, 65, 67, 65, 64, 62]
        .iter()
        .enumerate()
        .map(|(i, &p)| Note::new(p, 100, 0, i as f64 * 0.5, i as f64 * 0.5 + 0.45))
        .collect();
    let tempo = continuo::midi::TempoMap::from_changes(&[
        (0.0, 100.0),
        (2.0, 90.0),
        (3.5, 130.0),
        (7.0, 60.0),
    ]);
    let input = dir.path().join("tempo-changes.mid");
    continuo::midi::write_with_tempo_map(&input, &notes, &tempo, (3, 4), 480).expect("input");
    let output = dir.path().join("out.mid");
    let run = continuo(&[
        "continue",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--bars",
        "2",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));

    let song = continuo::midi::read(&output).expect("output is valid MIDI");
    assert_eq!(song.ticks_per_beat, 480);
    let ticks = |changes: &continuo::midi::TempoMap| -> Vec<(u64, f64)> {
        changes
            .changes()
            .map(|(beat, bpm)| ((beat * 480.0).round() as u64, bpm))
            .collect()
    };
    let (got, want) = (ticks(&song.tempo_map), ticks(&tempo.until(6.0)));
    assert_eq!(
        got.iter().map(|c| c.0).collect::<Vec<_>>(),
        [0, 960, 1680],
        "the input's changes at the same ticks, none after the continuation point"
    );
    for ((_, bpm), (_, want_bpm)) in got.iter().zip(&want) {
        assert!((bpm - want_bpm).abs() < 0.01, "{got:?} vs {want:?}");
    }
    assert!((song.tempo_map.bpm_at(100.0) - 130.0).abs() < 0.01);
    assert_eq!(song.time_signature, (3, 4));
    let continued: Vec<Note> = song
        .melodic_notes(None)
        .expect("notes")
        .into_iter()
        .filter(|n| n.start_beat >= 4.0)
        .collect();
    assert!(
        !continued.is_empty()
            && continued
                .iter()
                .all(|n| (6.0..12.0).contains(&n.start_beat)),
        "two bars of 3/4 from beat 6: {continued:?}"
    );
}

/// `--model auto` (the default) answers a melody with the shipped melody model
/// (`models/continuo-folk`, which a build from the repository finds) and `--texture chords`
/// with the chorale model; an unknown texture is refused.
#[test]
fn auto_picks_the_model_by_texture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = melody(dir.path(), 100.0);
    let output = dir.path().join("out.mid");
    let continue_with = |extra: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_continuo"))
            .arg("continue")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .args(extra)
            .output()
            .expect("run continuo")
    };
    // A successful run that says it wrote `texture` with `model`.
    let assert_wrote = |run: &Output, texture: &str, model: &str| {
        assert!(run.status.success(), "{}", stderr(run));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.contains(&format!("as {texture}")) && stdout.contains(model),
            "{stdout}"
        );
    };

    assert_wrote(&continue_with(&[]), "melody", "continuo-folk.json");
    let continued: Vec<Note> = continuo::midi::read(&output)
        .expect("output")
        .melodic_notes(None)
        .expect("notes")
        .into_iter()
        .filter(|n| n.start_beat >= 4.0)
        .collect();
    assert!(!continued.is_empty());
    assert_eq!(
        continuo::phrase::texture::max_polyphony(&continued),
        1,
        "a melody is continued as one line"
    );

    assert_wrote(
        &continue_with(&["--texture", "chords"]),
        "chords",
        "continuo-chorales.json",
    );

    let bad = continue_with(&["--texture", "hymn"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown texture `hymn`"),
        "{}",
        stderr(&bad)
    );
}

/// A one-note primer gets a tune back and a 40-voice cluster a bounded answer in chords:
/// a sensible answer, never a panic or a flood.
#[test]
fn a_one_note_primer_and_a_forty_voice_cluster_are_answered_sensibly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one_note = vec![Note::new(60, 100, 0, 0.0, 1.0)];
    let cluster: Vec<Note> = (0..40)
        .map(|i| Note::new(40 + i, 100, 0, 0.0, 4.0))
        .collect();
    for (name, notes, texture) in [
        ("one-note", one_note, "melody"),
        ("cluster", cluster, "chords"),
    ] {
        let input = dir.path().join(format!("{name}.mid"));
        continuo::midi::write(&input, &notes, 120.0, 480).expect("write");
        let output = dir.path().join(format!("{name}-out.mid"));
        let run = Command::new(env!("CARGO_BIN_EXE_continuo"))
            .arg("continue")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .expect("run continuo");
        assert!(run.status.success(), "{name}: {}", stderr(&run));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.contains(&format!("continued as {texture}")),
            "{name}: {stdout}"
        );
        let written = continuo::midi::read(&output)
            .expect("output")
            .melodic_notes(None)
            .expect("notes");
        let continued = written.len() - notes.len();
        assert!(
            (1..=256).contains(&continued),
            "{name}: {continued} notes continued"
        );
    }
}
