//! End-to-end tests across the layer: notes → MIDI file → notes → tokens → notes → MIDI file.

use proptest::prelude::*;

use super::tokenizer::{quantize_duration_steps, quantize_velocity};
use super::*;

/// The plugin's captured note (mirrors `crate::phrase::history::RecordedNote`), to show and
/// test the conversion the phrase layer will use.
#[derive(Debug, Clone, Copy)]
struct RecordedNote {
    pitch: u8,
    channel: u8,
    velocity: f32,
    start_beat: f64,
    end_beat: f64,
}

impl From<RecordedNote> for Note {
    fn from(r: RecordedNote) -> Self {
        Note::new(
            r.pitch.min(127),
            Note::velocity_from_unit(r.velocity),
            r.channel.min(15),
            r.start_beat,
            r.end_beat,
        )
    }
}

fn sorted(mut notes: Vec<Note>) -> Vec<Note> {
    notes.sort_by(|a, b| {
        a.start_beat
            .total_cmp(&b.start_beat)
            .then(a.pitch.cmp(&b.pitch))
            .then(a.end_beat.total_cmp(&b.end_beat))
    });
    notes
}

fn assert_same(got: &[Note], want: &[Note]) {
    assert_eq!(got.len(), want.len(), "{got:?}\n{want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.pitch, g.velocity, g.channel),
            (w.pitch, w.velocity, w.channel)
        );
        assert!((g.start_beat - w.start_beat).abs() < 1e-9, "{g:?} vs {w:?}");
        assert!((g.end_beat - w.end_beat).abs() < 1e-9, "{g:?} vs {w:?}");
    }
}

/// File → tokens → file, then read again.
fn through_tokens(dir: &std::path::Path, notes: &[Note], bpm: f64) -> Vec<Note> {
    let first = dir.join("in.mid");
    write(&first, notes, bpm, 480).unwrap();
    let song = read(&first).unwrap();
    let tokenizer = EventTokenizer::new();
    let options = EncodeOptions::from_time_signature(song.time_signature.0, song.time_signature.1);
    let tokens = tokenizer.encode(&song.melodic_notes(None).unwrap(), &options);
    let decoded = tokenizer.decode(&tokens, &DecodeOptions::default());
    let second = dir.join("out.mid");
    write(&second, &decoded, bpm, 480).unwrap();
    sorted(read(&second).unwrap().melodic_notes(None).unwrap())
}

#[test]
fn hand_made_phrase_survives_file_and_tokens() {
    let recorded = [
        // A chord, a note overlapping the same pitch, a note across the bar line, a long note.
        RecordedNote {
            pitch: 60,
            channel: 0,
            velocity: 0.8,
            start_beat: 0.0,
            end_beat: 2.0,
        },
        RecordedNote {
            pitch: 64,
            channel: 0,
            velocity: 0.7,
            start_beat: 0.0,
            end_beat: 2.0,
        },
        RecordedNote {
            pitch: 67,
            channel: 0,
            velocity: 0.6,
            start_beat: 0.0,
            end_beat: 2.0,
        },
        RecordedNote {
            pitch: 60,
            channel: 0,
            velocity: 0.5,
            start_beat: 1.0,
            end_beat: 3.0,
        },
        RecordedNote {
            pitch: 71,
            channel: 0,
            velocity: 0.9,
            start_beat: 3.5,
            end_beat: 4.75,
        },
        RecordedNote {
            pitch: 48,
            channel: 0,
            velocity: 1.0,
            start_beat: 4.0,
            end_beat: 14.0,
        },
        RecordedNote {
            pitch: 72,
            channel: 0,
            velocity: 0.4,
            start_beat: 5.0 + 1.0 / 3.0,
            end_beat: 5.0 + 2.0 / 3.0,
        },
    ];
    let notes: Vec<Note> = recorded.iter().map(|&r| r.into()).collect();
    let dir = tempfile::tempdir().unwrap();
    let got = through_tokens(dir.path(), &notes, 100.0);

    let v = |unit: f32| quantize_velocity(Note::velocity_from_unit(unit));
    let want = sorted(vec![
        // The retriggered C ends the first one at beat 1 (file semantics).
        Note::new(60, v(0.8), 0, 0.0, 1.0),
        Note::new(64, v(0.7), 0, 0.0, 2.0),
        Note::new(67, v(0.6), 0, 0.0, 2.0),
        Note::new(60, v(0.5), 0, 1.0, 3.0),
        Note::new(71, v(0.9), 0, 3.5, 4.75),
        Note::new(48, v(1.0), 0, 4.0, 14.0),
        Note::new(72, v(0.4), 0, 5.0 + 1.0 / 3.0, 5.0 + 2.0 / 3.0),
    ]);
    assert_same(&got, &want);
}

/// Grid notes with no two of one pitch overlapping once their lengths are binned, so the file
/// format's retrigger rule does not change them.
fn phrase() -> impl Strategy<Value = Vec<(u32, u32, u8, u8)>> {
    prop::collection::vec((0u32..480, 1u32..220, 36u8..=84, 1u8..=127), 1..30).prop_map(|raw| {
        let mut kept: Vec<(u32, u32, u8, u8)> = Vec::new();
        for (start, len, pitch, velocity) in raw {
            let end = start + quantize_duration_steps(len);
            let clash = kept.iter().any(|&(s, l, p, _)| {
                p == pitch && start < s + quantize_duration_steps(l) && s < end
            });
            if !clash {
                kept.push((start, len, pitch, velocity));
            }
        }
        kept
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// MIDI → tokens → MIDI keeps onsets on the 1/12-beat grid exactly, lengths to their
    /// duration bin and velocities to their bin.
    #[test]
    fn midi_tokens_midi_round_trip(raw in phrase(), bpm in 40.0f64..240.0) {
        let notes: Vec<Note> = raw
            .iter()
            .map(|&(s, l, p, v)| Note::new(p, v, 0, f64::from(s) / 12.0, f64::from(s + l) / 12.0))
            .collect();
        let want = sorted(
            raw.iter()
                .map(|&(s, l, p, v)| {
                    let end = s + quantize_duration_steps(l);
                    Note::new(p, quantize_velocity(v), 0, f64::from(s) / 12.0, f64::from(end) / 12.0)
                })
                .collect(),
        );
        let dir = tempfile::tempdir().unwrap();
        let got = through_tokens(dir.path(), &notes, bpm);
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!((g.pitch, g.velocity), (w.pitch, w.velocity));
            prop_assert!((g.start_beat - w.start_beat).abs() < 1e-9);
            prop_assert!((g.end_beat - w.end_beat).abs() < 1e-9);
        }
    }
}

#[test]
fn key_of_a_file() {
    // D minor: i – iv – V – i as whole-bar chords, written and read back.
    let chords: [&[u8]; 4] = [
        &[50, 65, 69, 74],
        &[55, 67, 70, 74],
        &[45, 64, 69, 73],
        &[50, 62, 65, 69],
    ];
    let notes: Vec<Note> = chords
        .iter()
        .enumerate()
        .flat_map(|(bar, chord)| {
            let start = bar as f64 * 4.0;
            chord
                .iter()
                .map(move |&p| Note::new(p, 90, 0, start, start + 4.0))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dminor.mid");
    write(&path, &notes, 120.0, 96).unwrap();
    let key = detect_key(&read(&path).unwrap().melodic_notes(None).unwrap()).unwrap();
    assert_eq!((key.root, key.mode), (2, Mode::Minor), "{key}");
    assert!(key.scale().contains(70) && !key.scale().contains(71));
}
