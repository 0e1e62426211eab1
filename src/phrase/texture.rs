//! What a phrase is, as played: one line or chords, in which key, over which range, at which
//! pace. A continuation answers in kind: a hummed tune gets a tune back, not a four-part hymn.
//! The plugin, the CLI and the evaluation (`continuo-train eval-phrase`) all read it here.

use std::fmt;
use std::str::FromStr;

use crate::midi::key::{detect_key, Key, Mode, Scale};
use crate::midi::Note;

/// The texture a continuation is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Texture {
    /// One note at a time.
    Melody,
    /// Several voices at once.
    Chords,
}

impl fmt::Display for Texture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Melody => "melody",
            Self::Chords => "chords",
        })
    }
}

/// The musician's texture setting: follow the input, or force one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextureChoice {
    /// The texture of what was played ([`detect_texture`]).
    #[default]
    AsPlayed,
    /// Always one line.
    Melody,
    /// Always chords.
    Chords,
}

impl TextureChoice {
    /// The texture to write for `prompt`.
    pub fn resolve(self, prompt: &[Note]) -> Texture {
        match self {
            Self::AsPlayed => detect_texture(prompt),
            Self::Melody => Texture::Melody,
            Self::Chords => Texture::Chords,
        }
    }
}

/// A texture already resolved, as a choice (so that it is not detected again).
impl From<Texture> for TextureChoice {
    fn from(texture: Texture) -> Self {
        match texture {
            Texture::Melody => Self::Melody,
            Texture::Chords => Self::Chords,
        }
    }
}

impl FromStr for TextureChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "as-played" | "auto" => Ok(Self::AsPlayed),
            "melody" => Ok(Self::Melody),
            "chords" => Ok(Self::Chords),
            other => Err(format!(
                "unknown texture `{other}` (as-played, melody or chords)"
            )),
        }
    }
}

/// A note may still ring this long (beats) into the next one and count as legato, not chord.
const LEGATO_OVERLAP_BEATS: f64 = 0.25;
/// Share of onsets that start over another note above which playing counts as chords.
const CHORD_ONSET_SHARE: f64 = 0.2;

/// Chords when more than a fifth of the onsets start while an earlier note still sounds (by
/// more than a legato overlap); otherwise, and for an empty phrase, melody. Drums are ignored.
pub fn detect_texture(notes: &[Note]) -> Texture {
    if chord_onset_share(notes) > CHORD_ONSET_SHARE {
        Texture::Chords
    } else {
        Texture::Melody
    }
}

/// Share of onsets (0–1) that start while another, earlier or simultaneous, note sounds.
pub fn chord_onset_share(notes: &[Note]) -> f64 {
    let mut notes: Vec<&Note> = notes.iter().filter(|note| !note.is_drum()).collect();
    notes.sort_by(|a, b| a.start_beat.total_cmp(&b.start_beat));
    if notes.is_empty() {
        return 0.0;
    }
    let mut sounding_until = f64::NEG_INFINITY;
    let mut previous_start = f64::NEG_INFINITY;
    let mut over = 0;
    for note in &notes {
        let together = note.start_beat - previous_start < 1e-6;
        if together || sounding_until - note.start_beat > LEGATO_OVERLAP_BEATS {
            over += 1;
        }
        sounding_until = sounding_until.max(note.end_beat);
        previous_start = note.start_beat;
    }
    over as f64 / notes.len() as f64
}

/// How far (semitones) a continuation may leave the played range while following the input.
pub const RANGE_MARGIN: u8 = 12;

/// What a continuation follows of the played phrase ([`profile`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayedProfile {
    /// One line or chords.
    pub texture: Texture,
    /// The key, when one stands out.
    pub key: Option<Key>,
    /// Lowest and highest pitch played.
    pub range: (u8, u8),
    /// Onsets per beat over the phrase.
    pub onsets_per_beat: f32,
    /// Notes per beat over the phrase (onsets times the notes per chord).
    pub notes_per_beat: f32,
    /// The median note length, beats.
    pub median_duration_beats: f32,
}

/// The profile of `notes` (drums ignored), `None` when there are none.
pub fn profile(notes: &[Note], texture: TextureChoice) -> Option<PlayedProfile> {
    let melodic: Vec<Note> = notes.iter().filter(|n| !n.is_drum()).copied().collect();
    let low = melodic.iter().map(|n| n.pitch).min()?;
    let high = melodic.iter().map(|n| n.pitch).max()?;
    let first = melodic
        .iter()
        .map(|n| n.start_beat)
        .fold(f64::INFINITY, f64::min);
    let last = melodic
        .iter()
        .map(|n| n.end_beat)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut onsets: Vec<f64> = melodic.iter().map(|n| n.start_beat).collect();
    onsets.sort_by(f64::total_cmp);
    onsets.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    let beats = (last - first).max(1.0);
    let mut durations: Vec<f64> = melodic.iter().map(Note::duration_beats).collect();
    durations.sort_by(f64::total_cmp);
    Some(PlayedProfile {
        median_duration_beats: durations[durations.len() / 2] as f32,
        texture: texture.resolve(&melodic),
        key: detect_key(&melodic),
        range: (low, high),
        onsets_per_beat: (onsets.len() as f64 / beats) as f32,
        notes_per_beat: (melodic.len() as f64 / beats) as f32,
    })
}

impl PlayedProfile {
    /// The pitches a continuation that follows the input may use: the played range widened by
    /// [`RANGE_MARGIN`] on each side, inside `allowed` (the musician's own range). When the two
    /// do not meet, the musician's range wins.
    pub fn pitch_range(&self, allowed: (u8, u8)) -> (u8, u8) {
        let low = self.range.0.saturating_sub(RANGE_MARGIN).max(allowed.0);
        let high = self
            .range
            .1
            .saturating_add(RANGE_MARGIN)
            .min(127)
            .min(allowed.1);
        if low <= high {
            (low, high)
        } else {
            allowed
        }
    }

    /// The pitches that are "in the key": the key's scale, and for a minor key its raised sixth
    /// and seventh too (melodic and harmonic minor, which minor tunes use all the time).
    pub fn key_scale(&self) -> Option<Scale> {
        self.key.map(|key| in_key_scale(&key))
    }
}

/// [`PlayedProfile::key_scale`] for a given key.
pub fn in_key_scale(key: &Key) -> Scale {
    match key.mode {
        Mode::Major => Scale::major(key.root),
        // 0 2 3 5 7 8 9 10 11: natural minor plus the raised 6th and 7th.
        Mode::Minor => Scale::new(key.root, 0b1111_1010_1101),
    }
}

/// Share of `notes` (0–1) inside `scale`; 1 for none.
pub fn share_in_scale(notes: &[Note], scale: &Scale) -> f64 {
    if notes.is_empty() {
        return 1.0;
    }
    notes.iter().filter(|n| scale.contains(n.pitch)).count() as f64 / notes.len() as f64
}

/// Most notes sounding at once.
pub fn max_polyphony(notes: &[Note]) -> usize {
    // On a microbeat grid, so that a note ending where the next starts (up to rounding) is
    // not a chord: ends sort before starts at the same instant.
    let grid = |beat: f64| (beat * 1e6).round() as i64;
    let mut edges: Vec<(i64, i32)> = notes
        .iter()
        .flat_map(|n| [(grid(n.start_beat), 1), (grid(n.end_beat), -1)])
        .collect();
    edges.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pitches: &[u8], step: f64, length: f64) -> Vec<Note> {
        pitches
            .iter()
            .enumerate()
            .map(|(i, &p)| Note::new(p, 90, 0, i as f64 * step, i as f64 * step + length))
            .collect()
    }

    #[test]
    fn a_tune_is_a_melody_even_played_legato_and_chords_are_chords() {
        let tune = line(&[60, 62, 64, 65, 67, 65, 64, 62], 1.0, 1.0);
        assert_eq!(detect_texture(&tune), Texture::Melody);
        // A sloppy legato overlap of a sixteenth is still one line.
        let legato = line(&[60, 62, 64, 65, 67, 65, 64, 62], 1.0, 1.2);
        assert_eq!(detect_texture(&legato), Texture::Melody);
        let mut chords = Vec::new();
        for (bar, root) in [60u8, 65, 67, 60].iter().enumerate() {
            for offset in [0, 4, 7] {
                let start = bar as f64 * 4.0;
                chords.push(Note::new(root + offset, 90, 0, start, start + 4.0));
            }
        }
        assert_eq!(detect_texture(&chords), Texture::Chords);
        // A melody over a held bass note: the onsets over the bass make it chords.
        let mut over_bass = tune.clone();
        over_bass.push(Note::new(36, 90, 0, 0.0, 8.0));
        assert_eq!(detect_texture(&over_bass), Texture::Chords);
        assert_eq!(detect_texture(&[]), Texture::Melody);
        assert_eq!(TextureChoice::Chords.resolve(&tune), Texture::Chords);
    }

    #[test]
    fn the_profile_follows_range_key_and_pace() {
        // D major scale up and down in eighths.
        let tune = line(&[62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 67], 0.5, 0.5);
        let played = profile(&tune, TextureChoice::AsPlayed).expect("notes");
        assert_eq!(played.texture, Texture::Melody);
        assert_eq!(played.range, (62, 74));
        assert!((played.onsets_per_beat - 2.0).abs() < 1e-6);
        assert!((played.notes_per_beat - 2.0).abs() < 1e-6);
        assert_eq!(played.median_duration_beats, 0.5);
        let key = played.key.expect("a key");
        assert_eq!((key.root, key.mode), (2, Mode::Major));
        assert_eq!(played.pitch_range((0, 127)), (50, 86));
        assert_eq!(
            played.pitch_range((36, 60)),
            (50, 60),
            "inside the musician's range"
        );
        assert_eq!(
            played.pitch_range((90, 100)),
            (90, 100),
            "theirs wins when apart"
        );
        assert!(profile(&[], TextureChoice::AsPlayed).is_none());
    }

    #[test]
    fn minor_keys_allow_their_raised_sixth_and_seventh() {
        let a_minor = Key {
            root: 9,
            mode: Mode::Minor,
            correlation: 0.9,
        };
        let scale = in_key_scale(&a_minor);
        for pitch in [69, 71, 72, 74, 76, 77, 78, 79, 80] {
            assert!(scale.contains(pitch), "{pitch}");
        }
        for pitch in [70, 73, 75] {
            assert!(!scale.contains(pitch), "{pitch}");
        }
        let notes = line(&[69, 70, 71, 72], 1.0, 1.0);
        assert!((share_in_scale(&notes, &scale) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn polyphony_counts_notes_sounding_together() {
        assert_eq!(max_polyphony(&line(&[60, 62, 64], 1.0, 1.0)), 1);
        assert_eq!(max_polyphony(&line(&[60, 62, 64], 1.0, 2.5)), 3);
        // Back to back, with the end a rounding error past the next start: one line.
        let mut rounded = line(&[60, 62], 1.0 / 3.0, 1.0 / 3.0);
        rounded[0].end_beat += 1e-12;
        assert_eq!(max_polyphony(&rounded), 1);
        assert_eq!(max_polyphony(&[]), 0);
    }

    #[test]
    fn texture_choices_parse() {
        assert_eq!("as-played".parse(), Ok(TextureChoice::AsPlayed));
        assert_eq!("Melody".parse(), Ok(TextureChoice::Melody));
        assert_eq!("chords".parse(), Ok(TextureChoice::Chords));
        assert!("hymn".parse::<TextureChoice>().is_err());
    }
}
