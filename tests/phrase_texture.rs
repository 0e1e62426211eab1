//! Phrase answers in kind, with the shipped models chosen as the plugin chooses them (`auto`):
//! a tune played one note at a time is continued as a tune — one line, in its key, near its
//! range and pace — and chords are continued as chords. The tunes are four well-known melodies
//! typed in by hand (three major, one minor) and held-out folk tunes the melody model never
//! saw (`tests/fixtures/folk-held-out/`, held out by the trainer's file-name hash).
//!
//! The figures are printed: `cargo test --release --test phrase_texture -- --nocapture`.

mod common;

use std::path::Path;

use continuo::midi::Note;
use continuo::model::{BackendChoice, ModelDirs};
use continuo::phrase::generate::{
    generate, load_token_model, GenerationSettings, ModelSet, Rng, AUTO_MODEL, DEFAULT_MODEL,
    MELODY_MODEL,
};
use continuo::phrase::texture::{
    chord_onset_share, detect_texture, in_key_scale, max_polyphony, profile, share_in_scale,
    Texture, TextureChoice, RANGE_MARGIN,
};

const SEEDS: u64 = 4;
const BARS: u32 = 4;

fn shipped_models() -> ModelSet {
    let dirs = ModelDirs::new([Path::new(env!("CARGO_MANIFEST_DIR")).join("models")]);
    let (models, missing) =
        ModelSet::load(AUTO_MODEL, &dirs, BackendChoice::Tract).expect("shipped models");
    assert!(missing.is_none(), "both shipped models load: {missing:?}");
    models
}

/// A melody from (MIDI pitch, beats) pairs, legato.
fn tune(notes: &[(u8, f64)]) -> Vec<Note> {
    let mut beat = 0.0;
    notes
        .iter()
        .map(|&(pitch, length)| {
            let note = Note::new(pitch, 90, 0, beat, beat + length);
            beat += length;
            note
        })
        .collect()
}

/// The four tunes, 8 bars of 4/4 each (or fewer), as a musician would type them in: one bar
/// per line.
#[rustfmt::skip]
fn typed_tunes() -> Vec<(&'static str, Vec<Note>)> {
    let (q, h) = (1.0, 2.0);
    let (c4, d4, e4, f4, fs4, g4, a4, bf4, b4) = (60, 62, 64, 65, 66, 67, 69, 70, 71);
    let (c5, d5) = (72, 74);
    vec![
        ("Ode to Joy (F major)", tune(&[
            (a4, q), (a4, q), (bf4, q), (c5, q),
            (c5, q), (bf4, q), (a4, q), (g4, q),
            (f4, q), (f4, q), (g4, q), (a4, q),
            (a4, 1.5), (g4, 0.5), (g4, h),
            (a4, q), (a4, q), (bf4, q), (c5, q),
            (c5, q), (bf4, q), (a4, q), (g4, q),
            (f4, q), (f4, q), (g4, q), (a4, q),
            (g4, 1.5), (f4, 0.5), (f4, h),
        ])),
        ("Twinkle, Twinkle (C major)", tune(&[
            (c4, q), (c4, q), (g4, q), (g4, q),
            (a4, q), (a4, q), (g4, h),
            (f4, q), (f4, q), (e4, q), (e4, q),
            (d4, q), (d4, q), (c4, h),
            (g4, q), (g4, q), (f4, q), (f4, q),
            (e4, q), (e4, q), (d4, h),
            (g4, q), (g4, q), (f4, q), (f4, q),
            (e4, q), (e4, q), (d4, h),
        ])),
        ("Frère Jacques (D major)", tune(&[
            (d4, q), (e4, q), (fs4, q), (d4, q),
            (d4, q), (e4, q), (fs4, q), (d4, q),
            (fs4, q), (g4, q), (a4, h),
            (fs4, q), (g4, q), (a4, h),
            (a4, 0.5), (b4, 0.5), (a4, 0.5), (g4, 0.5), (fs4, q), (d4, q),
            (a4, 0.5), (b4, 0.5), (a4, 0.5), (g4, 0.5), (fs4, q), (d4, q),
            (d4, q), (a4 - 12, q), (d4, h),
            (d4, q), (a4 - 12, q), (d4, h),
        ])),
        ("God Rest Ye Merry, Gentlemen (E minor)", tune(&[
            (e4, q), (e4, q), (b4, q), (b4, q),
            (a4, q), (g4, q), (fs4, q), (e4, q),
            (d4, q), (e4, q), (fs4, q), (g4, q),
            (a4, q), (b4, h + q),
            (e4, q), (e4, q), (b4, q), (b4, q),
            (a4, q), (g4, q), (fs4, q), (e4, q),
            (d4, q), (e4, q), (fs4, q), (g4, q),
            (a4, q), (b4, h + q),
            (b4, q), (c5, q), (a4, q), (b4, q),
            (c5, q), (d5, q), (e4 + 12, q), (b4, q),
            (a4, q), (g4, q), (e4, q), (fs4, q),
            (g4, q), (a4, h + q),
        ])),
    ]
}

/// The prompt (everything before `beats`) and its continuation from there.
fn continue_at(
    models: &mut ModelSet,
    notes: &[Note],
    beats: f64,
    settings: &GenerationSettings,
    seed: u64,
) -> (Vec<Note>, Vec<Note>) {
    let prompt: Vec<Note> = notes
        .iter()
        .filter(|n| n.start_beat < beats)
        .map(|n| Note {
            end_beat: n.end_beat.min(beats),
            ..*n
        })
        .collect();
    let texture = settings.texture.resolve(&prompt);
    let model = models.for_texture(texture).expect("a model");
    let mut continuation = Vec::new();
    generate(model, &prompt, beats, settings, &mut Rng::new(seed), |n| {
        continuation.push(n)
    })
    .expect("generate");
    (prompt, continuation)
}

/// What the issue measures of continuations, pooled.
#[derive(Default)]
struct Figures {
    continuations: usize,
    notes: usize,
    in_key: f64,
    out_of_range: usize,
    most_at_once: usize,
    /// Sum over continuations of (generated onsets per beat) / (prompt onsets per beat).
    density_ratio: f64,
}

impl Figures {
    /// `beats`: how long the continuation is.
    fn add(&mut self, prompt: &[Note], continuation: &[Note], beats: f64) {
        let played = profile(prompt, TextureChoice::AsPlayed).expect("a prompt");
        let key = played.key.expect("a key");
        let (low, high) = played.range;
        self.continuations += 1;
        self.notes += continuation.len();
        self.in_key +=
            share_in_scale(continuation, &in_key_scale(&key)) * continuation.len() as f64;
        self.out_of_range += continuation
            .iter()
            .filter(|n| n.pitch + RANGE_MARGIN < low || n.pitch > high.saturating_add(RANGE_MARGIN))
            .count();
        self.most_at_once = self.most_at_once.max(max_polyphony(continuation));
        let mut onsets: Vec<f64> = continuation.iter().map(|n| n.start_beat).collect();
        onsets.dedup();
        self.density_ratio += onsets.len() as f64 / beats / f64::from(played.onsets_per_beat);
    }

    fn in_key_share(&self) -> f64 {
        self.in_key / self.notes.max(1) as f64
    }

    fn mean_density_ratio(&self) -> f64 {
        self.density_ratio / self.continuations.max(1) as f64
    }

    fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} continuations, {} notes, {:.1} % in key, {} outside range ± octave, \
             at most {} at once, density {:.2}× the input's",
            self.continuations,
            self.notes,
            self.in_key_share() * 100.0,
            self.out_of_range,
            self.most_at_once,
            self.mean_density_ratio()
        );
    }
}

fn four_bars() -> GenerationSettings {
    GenerationSettings {
        bars: BARS,
        ..GenerationSettings::default()
    }
}

#[test]
fn a_typed_tune_is_continued_as_a_tune_in_its_key_range_and_pace() {
    let mut models = shipped_models();
    for (name, notes) in typed_tunes() {
        assert_eq!(detect_texture(&notes), Texture::Melody, "{name}");
        let end = notes.last().map_or(0.0, |n| n.end_beat);
        let mut figures = Figures::default();
        for seed in 0..SEEDS {
            let (prompt, continuation) = continue_at(&mut models, &notes, end, &four_bars(), seed);
            assert!(!continuation.is_empty(), "{name}, seed {seed}: no notes");
            figures.add(&prompt, &continuation, f64::from(BARS) * 4.0);
        }
        figures.print(name);
        // For comparison (printed, not asserted): the melody model on its own, and what Phrase
        // did before it had one (the chorale model, chords, not following the input).
        for (what, texture, follow_input) in [
            (
                "melody model, not following the input",
                TextureChoice::Melody,
                false,
            ),
            ("chorale model as before", TextureChoice::Chords, false),
        ] {
            let settings = GenerationSettings {
                texture,
                follow_input,
                ..four_bars()
            };
            let mut other = Figures::default();
            for seed in 0..SEEDS {
                let (prompt, continuation) = continue_at(&mut models, &notes, end, &settings, seed);
                other.add(&prompt, &continuation, f64::from(BARS) * 4.0);
            }
            other.print(&format!("  {what}"));
        }
        assert_eq!(figures.most_at_once, 1, "{name}: one line");
        assert_eq!(figures.out_of_range, 0, "{name}: near the tune's range");
        assert!(figures.in_key_share() >= 0.9, "{name}: in key");
        let density = figures.mean_density_ratio();
        assert!(
            (0.5..=2.0).contains(&density),
            "{name}: density {density:.2}× the tune's"
        );
    }
}

#[test]
fn held_out_folk_tunes_are_continued_in_kind() {
    held_out_folk_tunes_in_kind(&mut shipped_models(), "held-out folk tunes");
}

/// The Transformer beside the default GRU (`continuo-train compare`, models/README.md), chosen
/// by name: the same checks.
#[test]
fn the_shipped_folk_transformer_continues_tunes_in_kind() {
    let dirs = ModelDirs::new([Path::new(env!("CARGO_MANIFEST_DIR")).join("models")]);
    let model = load_token_model("continuo-folk-transformer", &dirs, BackendChoice::Tract)
        .expect("the shipped folk Transformer");
    held_out_folk_tunes_in_kind(
        &mut ModelSet::one(model),
        "held-out folk tunes, continuo-folk-transformer",
    );
}

fn held_out_folk_tunes_in_kind(models: &mut ModelSet, what: &str) {
    let mut figures = Figures::default();
    for (path, notes) in common::fixture_songs("folk-held-out") {
        // Four bars of the tune (in its own metre's beats) are the prompt.
        let song = continuo::midi::read(&path).expect("fixture");
        let (numerator, denominator) = song.time_signature;
        let bar = f64::from(numerator) * 4.0 / f64::from(denominator.max(1));
        let settings = GenerationSettings {
            beats_per_bar: bar,
            ..four_bars()
        };
        for seed in 0..2 {
            let (prompt, continuation) = continue_at(models, &notes, 4.0 * bar, &settings, seed);
            figures.add(&prompt, &continuation, f64::from(BARS) * bar);
        }
    }
    figures.print(what);
    assert!(figures.continuations >= 20);
    assert_eq!(figures.most_at_once, 1);
    assert_eq!(figures.out_of_range, 0);
    assert!(figures.in_key_share() >= 0.9);
    let density = figures.mean_density_ratio();
    assert!((0.67..=1.5).contains(&density), "density {density:.2}×");
}

#[test]
fn chords_are_continued_as_chords_and_the_texture_setting_wins() {
    let mut models = shipped_models();
    let chorales = common::fixture_songs("chorales-held-out");
    let mut chords_most = 0;
    let mut forced_melody_most = 0;
    for (path, notes) in chorales.iter().take(6) {
        assert!(chord_onset_share(notes) > 0.5, "{}", path.display());
        let (_, continuation) = continue_at(&mut models, notes, 8.0, &four_bars(), 1);
        chords_most = chords_most.max(max_polyphony(&continuation));
        let melody = GenerationSettings {
            texture: TextureChoice::Melody,
            ..four_bars()
        };
        let (_, line) = continue_at(&mut models, notes, 8.0, &melody, 1);
        assert!(!line.is_empty());
        forced_melody_most = forced_melody_most.max(max_polyphony(&line));
    }
    assert!(
        chords_most >= 3,
        "chorales answered in parts: {chords_most}"
    );
    assert_eq!(forced_melody_most, 1, "Texture = Melody writes one line");

    let (_, tune) = &typed_tunes()[1];
    let chords = GenerationSettings {
        texture: TextureChoice::Chords,
        ..four_bars()
    };
    let (_, harmonised) = continue_at(&mut models, tune, 32.0, &chords, 1);
    assert!(
        max_polyphony(&harmonised) >= 2,
        "Texture = Chords writes chords"
    );
}

#[test]
fn the_model_choice_lists_auto_and_both_shipped_models_first() {
    let dirs = ModelDirs::new([Path::new(env!("CARGO_MANIFEST_DIR")).join("models")]);
    let choices = continuo::phrase::generate::continuation_choices(&dirs);
    assert_eq!(choices[..3], [AUTO_MODEL, DEFAULT_MODEL, MELODY_MODEL]);
}
