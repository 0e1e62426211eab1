//! Continuation generation with a real token-step ONNX model (random weights, generated here):
//! the constraints hold whatever the model says, and a seed makes it repeatable.

mod common;

use std::path::{Path, PathBuf};

use continuo::midi::key::Scale;
use continuo::midi::{Note, VOCAB_VERSION};
use continuo::model::{load_model, BackendChoice, Manifest, ModelKind};
use continuo::phrase::generate::{generate, GenerateError, GenerationSettings, Rng, TokenModel};
use continuo::phrase::texture::{max_polyphony, TextureChoice};

/// A random token model declaring `vocabulary` as its vocabulary version.
fn random_model(dir: &Path, vocabulary: &str) -> PathBuf {
    let path = common::random_continuation_model(dir, "random", 42, 32);
    let mut manifest = Manifest::load(&path).expect("manifest");
    if let Some(info) = manifest.vocabulary.as_mut() {
        info.version = vocabulary.into();
    }
    manifest.save(&path).expect("save");
    path
}

fn token_model(path: &Path) -> TokenModel {
    let loaded = load_model(path, ModelKind::Continuation, BackendChoice::Tract).expect("load");
    TokenModel::new(loaded).expect("token-step contract")
}

fn prompt() -> Vec<Note> {
    // C major arpeggio over two bars.
    [60u8, 64, 67, 72, 67, 64, 60, 55]
        .iter()
        .enumerate()
        .map(|(i, &pitch)| Note::new(pitch, 90, 0, i as f64, i as f64 + 0.9))
        .collect()
}

fn run(model: &mut TokenModel, settings: &GenerationSettings, seed: u64) -> Vec<Note> {
    let mut notes = Vec::new();
    generate(
        model,
        &prompt(),
        8.0,
        settings,
        &mut Rng::new(seed),
        |note| notes.push(note),
    )
    .expect("generate");
    notes
}

#[test]
fn constraints_hold_and_seeds_repeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let scale = Scale::major(0);
    let settings = GenerationSettings {
        bars: 4,
        scale: Some(scale),
        pitch_range: (48, 84),
        velocity_scale: 0.5,
        ..GenerationSettings::default()
    };
    let notes = run(&mut model, &settings, 1);
    assert!(
        notes.len() >= 4,
        "a random model still produces notes: {}",
        notes.len()
    );
    for note in &notes {
        assert!(scale.contains(note.pitch), "key lock: {note:?}");
        assert!((48..=84).contains(&note.pitch), "pitch range: {note:?}");
        assert!(
            note.start_beat >= 8.0 && note.start_beat < 8.0 + 16.0,
            "inside the 4 bars: {note:?}"
        );
        assert!(note.velocity <= 64, "velocity scaled by 0.5: {note:?}");
        assert!(note.end_beat > note.start_beat);
    }
    assert!(
        notes.windows(2).all(|w| w[0].start_beat <= w[1].start_beat),
        "notes come in start order"
    );
    assert_eq!(
        run(&mut model, &settings, 1),
        notes,
        "same seed, same phrase"
    );
    assert_ne!(
        run(&mut model, &settings, 2),
        notes,
        "another seed, another phrase"
    );
}

#[test]
fn density_control_moves_the_note_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let mut rate = |target: f32| {
        // Chords: a random model's long notes would otherwise hold a melody back.
        let settings = GenerationSettings {
            bars: 4,
            density_notes_per_beat: Some(target),
            texture: TextureChoice::Chords,
            ..GenerationSettings::default()
        };
        (1..=4)
            .map(|seed| run(&mut model, &settings, seed).len())
            .sum::<usize>() as f32
            / (4.0 * 16.0)
    };
    let sparse = rate(0.5);
    let dense = rate(3.0);
    assert!(
        dense > 2.0 * sparse,
        "density 3 gives {dense} notes/beat, density 0.5 gives {sparse}"
    );
}

#[test]
fn a_melody_never_has_two_notes_at_once_and_following_keeps_the_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let (low, high) = prompt()
        .iter()
        .fold((127, 0), |(lo, hi), n| (n.pitch.min(lo), n.pitch.max(hi)));
    let mut most = |texture, follow_input| {
        let settings = GenerationSettings {
            bars: 4,
            texture,
            follow_input,
            ..GenerationSettings::default()
        };
        let notes: Vec<Note> = (1..=4)
            .flat_map(|seed| run(&mut model, &settings, seed))
            .collect();
        let in_range = notes
            .iter()
            .all(|n| n.pitch + 12 >= low && n.pitch <= high + 12);
        // Notes of one seed only overlap each other; max over seeds.
        let polyphony = (1..=4)
            .map(|seed| max_polyphony(&run(&mut model, &settings, seed)))
            .max()
            .unwrap_or(0);
        (polyphony, in_range, notes.len())
    };
    let (chords, _, _) = most(TextureChoice::Chords, true);
    assert!(
        chords > 1,
        "a random model writes chords when allowed: {chords}"
    );
    let (melody, in_range, notes) = most(TextureChoice::Melody, true);
    assert!(notes >= 4, "still writes notes: {notes}");
    assert_eq!(melody, 1, "Texture = Melody writes one line");
    assert!(in_range, "following keeps the prompt's range ± an octave");
    let (_, free_in_range, _) = most(TextureChoice::Melody, false);
    assert!(
        !free_in_range,
        "without following, a random model leaves the range"
    );
}

#[test]
fn quantisation_snaps_starts_to_the_grid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(dir.path(), VOCAB_VERSION));
    let settings = GenerationSettings {
        bars: 2,
        quantize_beats: Some(0.5),
        ..GenerationSettings::default()
    };
    let notes = run(&mut model, &settings, 3);
    assert!(!notes.is_empty());
    assert!(
        notes
            .iter()
            .all(|n| (n.start_beat * 2.0).fract().abs() < 1e-9),
        "{notes:?}"
    );
}

#[test]
fn refuses_other_vocabularies_and_empty_prompts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = random_model(dir.path(), "someone-else-v9");
    let loaded = load_model(&path, ModelKind::Continuation, BackendChoice::Tract).expect("load");
    let error = TokenModel::new(loaded).err().expect("vocabulary mismatch");
    assert!(matches!(error, GenerateError::Vocabulary { .. }));
    assert!(error.to_string().contains("random.json"), "{error}");

    let other = tempfile::tempdir().expect("tempdir");
    let mut model = token_model(&random_model(other.path(), VOCAB_VERSION));
    let result = generate(
        &mut model,
        &[],
        0.0,
        &GenerationSettings::default(),
        &mut Rng::new(1),
        |_| {},
    );
    assert!(matches!(result, Err(GenerateError::NoNotes)));
}

mod model_switch {
    //! The phrase engine's model choice: switching loads the other model between generations,
    //! and a model that fails to load leaves the current one in place, with the reason.

    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use continuo::model::ModelDirs;
    use continuo::phrase::engine::{
        start, KeyLock, ModelShelf, ModelSource, PhraseCommand, PhraseRealtime, PhraseRequest,
        PhraseShared, TransportInfo,
    };
    use continuo::phrase::generate::{
        continuation_choices, AUTO_MODEL, DEFAULT_MODEL, MELODY_MODEL,
    };

    const RATE: f32 = 48_000.0;
    /// 120 BPM at 48 kHz.
    const SAMPLES_PER_BEAT: f64 = 24_000.0;
    const BLOCK: usize = 4_800;

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn block(realtime: &mut PhraseRealtime, beat: f64) {
        let transport = TransportInfo {
            playing: true,
            tempo_bpm: Some(120.0),
            pos_beats: Some(beat),
        };
        realtime.begin_block(transport, BLOCK);
    }

    /// Plays the blocks from `from` to `to` (beats) and returns the generated note-ons as
    /// (1/48-beat grid position, pitch), sorted.
    fn play(realtime: &mut PhraseRealtime, from: f64, to: f64) -> Vec<(i64, u8)> {
        let mut ons = Vec::new();
        let mut beat = from;
        while beat < to {
            block(realtime, beat);
            realtime.render(BLOCK as u32);
            for event in realtime.output().drain_sorted().filter(|e| e.on) {
                let at = beat + f64::from(event.timing) / SAMPLES_PER_BEAT;
                ons.push(((at * 48.0).round() as i64, event.pitch));
            }
            beat += BLOCK as f64 / SAMPLES_PER_BEAT;
        }
        ons.sort_unstable();
        ons
    }

    fn expected(model: &Path, prompt: &[Note], start_beat: f64, rng: &mut Rng) -> Vec<(i64, u8)> {
        let mut notes = Vec::new();
        generate(
            &mut token_model(model),
            prompt,
            start_beat,
            &GenerationSettings::default(),
            rng,
            |note| notes.push(((note.start_beat * 48.0).round() as i64, note.pitch)),
        )
        .expect("generate");
        notes.sort_unstable();
        notes
    }

    fn generate_at(realtime: &mut PhraseRealtime, trigger_beat: f64) {
        assert!(realtime.request(PhraseRequest::Generate {
            trigger_beat,
            tempo_bpm: 120.0,
            settings: GenerationSettings::default(),
            key_lock: KeyLock::Off,
            variations: 1,
            selected: 0,
        }));
    }

    fn generations(shared: &PhraseShared) -> u64 {
        shared.generations.load(Ordering::Relaxed)
    }

    #[test]
    fn switching_models_loads_the_other_between_generations_and_failures_keep_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alpha = common::random_continuation_model(dir.path(), "alpha", 1, 32);
        let beta = common::random_continuation_model(dir.path(), "beta", 2, 32);
        // Listed (only its manifest is read) but unloadable: the ONNX file is not the one hashed.
        common::random_continuation_model(dir.path(), "broken", 3, 32);
        std::fs::write(dir.path().join("broken.onnx"), b"not onnx").expect("corrupt");
        // A timbre model is no continuation choice.
        let (graph, inputs, outputs) = common::mlp_graph(1, 1, &[0.5], &[0.0]);
        common::write_model(
            dir.path(),
            "timbre",
            &graph,
            ModelKind::Timbre,
            inputs,
            outputs,
        );

        let dirs = ModelDirs::new([dir.path().to_path_buf()]);
        let choices = continuation_choices(&dirs);
        assert_eq!(
            choices,
            [
                AUTO_MODEL,
                DEFAULT_MODEL,
                MELODY_MODEL,
                "alpha",
                "beta",
                "broken"
            ]
        );

        let (lines_in, lines) = crossbeam_channel::unbounded::<String>();
        let report = Box::new(move |line: &str| {
            let _ = lines_in.send(line.to_owned());
        });
        let source = ModelSource {
            choices,
            initial: 3,
            dirs,
            backend: BackendChoice::Tract,
            shelf: Default::default(),
        };
        let (mut realtime, worker, shared) =
            start(RATE, 64.0, source, Default::default(), report).expect("start");
        // The model lines (each generation's own "generated …" line is checked once).
        let mut generated = Vec::new();
        let mut status = || loop {
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("status");
            if line.starts_with("generated ") {
                generated.push(line);
            } else {
                return line;
            }
        };
        let line = status();
        assert!(line.contains("alpha.json ready"), "{line}");
        assert_eq!(shared.model_choice.load(Ordering::Relaxed), 3);

        // Two bars of input from beat 0, then a trigger at beat 8: the continuation starts at
        // beat 12. The switch to beta is asked for right after that Generate.
        let melody = [60u8, 64, 67, 72, 67, 64, 60, 55];
        block(&mut realtime, 0.0);
        for (index, pitch) in melody.iter().enumerate() {
            let on = (index as f64 * SAMPLES_PER_BEAT) as u32 / 2;
            realtime.capture(on, true, 0, *pitch, 0.8);
            realtime.capture(on + 10_000, false, 0, *pitch, 0.0);
        }
        let (reply, snapshot) = crossbeam_channel::bounded(1);
        wait_for("the history", || {
            shared.notes_recorded.load(Ordering::Relaxed) == melody.len() as u64
        });
        assert!(worker.send(PhraseCommand::Snapshot(reply)));
        let prompt: Vec<Note> = snapshot
            .recv_timeout(Duration::from_secs(5))
            .expect("snapshot")
            .into_iter()
            .map(Note::from)
            .collect();
        block(&mut realtime, 8.0);
        generate_at(&mut realtime, 8.0);
        assert!(realtime.request(PhraseRequest::Model { index: 4 }));
        let line = status();
        assert!(line.contains("beta.json ready"), "{line}");
        assert_eq!(generations(&shared), 1);
        assert_eq!(shared.model_choice.load(Ordering::Relaxed), 4);

        let mut rng = Rng::new(0);
        let with_alpha = expected(&alpha, &prompt, 12.0, &mut rng);
        assert!(!with_alpha.is_empty());
        assert_eq!(
            play(&mut realtime, 8.0, 21.0),
            with_alpha,
            "the generation asked for before the switch plays the old model's notes"
        );

        generate_at(&mut realtime, 24.0);
        wait_for("the second generation", || generations(&shared) == 2);
        let with_beta = expected(&beta, &prompt, 28.0, &mut rng.clone());
        let with_alpha_again = expected(&alpha, &prompt, 28.0, &mut rng);
        assert_ne!(with_beta, with_alpha_again, "the two models differ");
        assert_eq!(
            play(&mut realtime, 24.0, 37.0),
            with_beta,
            "the next generation uses the new model"
        );

        // A model that does not load: beta stays, and the reason is reported.
        assert!(realtime.request(PhraseRequest::Model { index: 5 }));
        let line = status();
        assert!(
            line.contains("`broken` not loaded, keeping")
                && line.contains("beta.json")
                && line.contains("broken.onnx"),
            "{line}"
        );
        assert_eq!(shared.model_choice.load(Ordering::Relaxed), 4);
        assert!(shared.model_ready.load(Ordering::Relaxed));
        generate_at(&mut realtime, 40.0);
        wait_for("a generation after the failed switch", || {
            generations(&shared) == 3
        });

        // An index past the list is refused the same way.
        assert!(realtime.request(PhraseRequest::Model { index: 9 }));
        let line = status();
        assert!(line.contains("no continuation model number 9"), "{line}");
        assert_eq!(shared.model_choice.load(Ordering::Relaxed), 4);
        // Each generation said what it wrote, with which model: the arpeggio is one line.
        assert!(
            generated[0].contains("notes as a melody with alpha"),
            "{generated:?}"
        );
        assert!(generated.len() >= 2 && generated[1].contains("notes as a melody with beta"));
    }

    /// A re-activation with the same choice keeps the model the last one loaded (it still
    /// plays after its file is gone, so it was not loaded again); another choice loads.
    #[test]
    fn a_reactivation_keeps_the_loaded_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alpha = common::random_continuation_model(dir.path(), "alpha", 1, 32);
        let shelf = ModelShelf::default();
        let activate = |initial: usize| {
            let source = ModelSource {
                choices: vec![alpha.display().to_string(), "no-such-model".into()],
                initial,
                dirs: ModelDirs::new(Vec::<PathBuf>::new()),
                backend: BackendChoice::Tract,
                shelf: shelf.clone(),
            };
            let (_realtime, worker, shared) =
                start(RATE, 64.0, source, Default::default(), Box::new(|_| {})).expect("start");
            let ready = shared.model_ready.load(Ordering::Relaxed);
            drop(worker);
            ready
        };
        assert!(activate(0), "the first activation loads alpha");
        std::fs::remove_file(&alpha).expect("remove alpha's manifest");
        assert!(activate(0), "the second keeps alpha without loading it");
        assert!(!activate(1), "another choice is loaded, and here fails");
        assert!(!activate(0), "the shelf was emptied by the other choice");
    }

    /// A continuation's prompt is what was played before its trigger (not what the worker
    /// happened to have received when it got to it), it starts at the host's next bar line and
    /// lasts the host's bars, also when a bar is longer than the model's 8 beats (12/4 here),
    /// and a Lowest Note above the Highest Note is taken as the range between them, in words.
    #[test]
    fn continuations_use_what_was_played_before_the_trigger_in_the_hosts_bars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alpha = common::random_continuation_model(dir.path(), "alpha", 1, 32);
        let (lines_in, lines) = crossbeam_channel::unbounded::<String>();
        let report = Box::new(move |line: &str| {
            let _ = lines_in.send(line.to_owned());
        });
        let source = ModelSource {
            choices: vec![alpha.display().to_string()],
            initial: 0,
            dirs: ModelDirs::new(Vec::<PathBuf>::new()),
            backend: BackendChoice::Tract,
            shelf: Default::default(),
        };
        let (mut realtime, _worker, shared) =
            start(RATE, 64.0, source, Default::default(), report).expect("start");
        // Played in at once, while the worker is still loading its model: a phrase from beat 0,
        // the trigger at beat 13, and more notes right after the trigger.
        let melody = [60u8, 64, 67, 72, 67, 64, 60, 55];
        let played: Vec<Note> = melody
            .iter()
            .enumerate()
            .map(|(i, &pitch)| {
                let start = i as f64 * 0.5;
                let end = start + 10_000.0 / SAMPLES_PER_BEAT;
                Note::new(pitch, Note::velocity_from_unit(0.8), 0, start, end)
            })
            .collect();
        block(&mut realtime, 0.0);
        for (index, pitch) in melody.iter().enumerate() {
            let on = (index as f64 * SAMPLES_PER_BEAT) as u32 / 2;
            realtime.capture(on, true, 0, *pitch, 0.8);
            realtime.capture(on + 10_000, false, 0, *pitch, 0.0);
        }
        block(&mut realtime, 13.0);
        let settings = GenerationSettings {
            bars: 1,
            beats_per_bar: 12.0,
            pitch_range: (84, 48),
            ..GenerationSettings::default()
        };
        assert!(realtime.request(PhraseRequest::Generate {
            trigger_beat: 13.0,
            tempo_bpm: 120.0,
            settings,
            key_lock: KeyLock::Off,
            variations: 1,
            selected: 0,
        }));
        for (index, pitch) in [40u8, 41, 42].iter().enumerate() {
            let on = 100 + index as u32 * 1_000;
            realtime.capture(on, true, 0, *pitch, 0.8);
            realtime.capture(on + 500, false, 0, *pitch, 0.0);
        }
        wait_for("the continuation", || generations(&shared) == 1);
        let status: Vec<String> = lines.try_iter().collect();
        assert!(
            status
                .iter()
                .any(|line| line.contains("Lowest Note C6 is above Highest Note C3")),
            "{status:?}"
        );

        // 12/4: the trigger at beat 13 (+ lead time) leads to the bar line at 24, for 12 beats.
        let mut expected_notes = Vec::new();
        generate(
            &mut token_model(&alpha),
            &played,
            24.0,
            &GenerationSettings {
                pitch_range: (48, 84),
                ..settings
            },
            &mut Rng::new(0),
            |note| expected_notes.push(note),
        )
        .expect("generate");
        assert!(!expected_notes.is_empty());
        for note in &expected_notes {
            assert!((48..=84).contains(&note.pitch), "{note:?}");
            assert!((24.0..36.0).contains(&note.start_beat), "{note:?}");
        }
        let mut expected: Vec<(i64, u8)> = expected_notes
            .iter()
            .map(|note| ((note.start_beat * 48.0).round() as i64, note.pitch))
            .collect();
        expected.sort_unstable();
        assert_eq!(play(&mut realtime, 13.2, 37.0), expected);
    }
}
