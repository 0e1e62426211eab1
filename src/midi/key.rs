//! Key detection and scales, for Continuo Phrase's key lock.
//!
//! [`detect_key`] is the Krumhansl–Schmuckler algorithm: build a duration-weighted
//! pitch-class histogram, correlate it (Pearson) with the Krumhansl–Kessler major and minor
//! key profiles rotated to each of the 12 roots, and pick the best of the 24 keys.
//! Profiles from C. L. Krumhansl, *Cognitive Foundations of Musical Pitch* (1990), table 4.1
//! (probe-tone ratings of Krumhansl & Kessler, 1982).
//!
//! [`Scale`] is a set of pitch classes; [`Scale::contains`] and [`Scale::snap`] implement the
//! lock.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Note;

/// Krumhansl–Kessler major-key profile, from the tonic upwards in semitones.
const MAJOR_PROFILE: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
/// Krumhansl–Kessler minor-key profile, from the tonic upwards in semitones.
const MINOR_PROFILE: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

/// Pitch-class names, sharps for black keys except E♭, A♭ and B♭ (the common spellings).
const NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

/// Major or minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Major key.
    Major,
    /// Minor key.
    Minor,
}

/// A detected key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// Pitch class of the tonic, 0 = C … 11 = B.
    pub root: u8,
    /// Major or minor.
    pub mode: Mode,
    /// Pearson correlation of the notes' histogram with this key's profile, −1 to 1; a
    /// confidence the plugin can show (tonal music usually scores above 0.7).
    pub correlation: f64,
}

impl Key {
    /// The scale for key lock: major, or natural minor for minor keys (use
    /// [`Scale::harmonic_minor`] to allow the raised seventh).
    pub fn scale(&self) -> Scale {
        match self.mode {
            Mode::Major => Scale::major(self.root),
            Mode::Minor => Scale::natural_minor(self.root),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Major => "major",
            Mode::Minor => "minor",
        };
        write!(f, "{} {mode}", NAMES[usize::from(self.root % 12)])
    }
}

/// Total duration in beats of each pitch class (0 = C), drums excluded.
pub fn pitch_class_histogram(notes: &[Note]) -> [f64; 12] {
    let mut histogram = [0.0; 12];
    for note in notes.iter().filter(|n| !n.is_drum()) {
        let beats = note.duration_beats();
        if beats.is_finite() && beats > 0.0 {
            histogram[usize::from(note.pitch % 12)] += beats;
        }
    }
    histogram
}

/// The most likely key of `notes` (Krumhansl–Schmuckler, durations as weights, drums
/// excluded), or `None` if there are no pitched notes or every pitch class is equally present.
///
/// # Examples
///
/// ```
/// use continuo::midi::{detect_key, Mode, Note};
///
/// // A G major arpeggio with a passing F#.
/// let notes: Vec<Note> = [67, 71, 74, 66, 67]
///     .iter()
///     .enumerate()
///     .map(|(i, &p)| Note::new(p, 100, 0, i as f64, i as f64 + 1.0))
///     .collect();
/// let key = detect_key(&notes).unwrap();
/// assert_eq!((key.root, key.mode), (7, Mode::Major));
/// assert_eq!(key.to_string(), "G major");
/// ```
pub fn detect_key(notes: &[Note]) -> Option<Key> {
    rank_keys(&pitch_class_histogram(notes)).into_iter().next()
}

/// All 24 keys ranked by correlation with `histogram`, best first (empty if the histogram is
/// flat or not finite). Ties keep major before minor and lower roots first.
pub fn rank_keys(histogram: &[f64; 12]) -> Vec<Key> {
    let mut keys = Vec::with_capacity(24);
    for (mode, profile) in [(Mode::Major, &MAJOR_PROFILE), (Mode::Minor, &MINOR_PROFILE)] {
        for root in 0..12u8 {
            // The profile rotated so that index `pc` gives the weight of pitch class `pc`.
            let rotated: [f64; 12] =
                std::array::from_fn(|pc| profile[(pc + 12 - usize::from(root)) % 12]);
            if let Some(correlation) = pearson(histogram, &rotated) {
                keys.push(Key {
                    root,
                    mode,
                    correlation,
                });
            }
        }
    }
    keys.sort_by(|a, b| b.correlation.total_cmp(&a.correlation));
    keys
}

fn pearson(x: &[f64; 12], y: &[f64; 12]) -> Option<f64> {
    let mean = |v: &[f64; 12]| v.iter().sum::<f64>() / 12.0;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then_some(r)
}

/// A set of pitch classes, for key lock.
///
/// # Examples
///
/// ```
/// use continuo::midi::Scale;
///
/// let d_major = Scale::major(2);
/// assert!(d_major.contains(66)); // F#
/// assert!(!d_major.contains(65)); // F
/// assert_eq!(d_major.snap(65), 64); // F → E (a tie with F#, resolved downwards)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scale {
    /// Pitch class of the tonic, 0–11.
    root: u8,
    /// Bit `i` set: the pitch class `i` semitones above the root is in the scale.
    intervals: u16,
}

impl Scale {
    const MAJOR: u16 = 0b1010_1011_0101; // 0 2 4 5 7 9 11
    const NATURAL_MINOR: u16 = 0b0101_1010_1101; // 0 2 3 5 7 8 10
    const HARMONIC_MINOR: u16 = 0b1001_1010_1101; // 0 2 3 5 7 8 11

    /// A scale from its root pitch class and a bit set of semitones above the root (bit 0 is
    /// the root itself). Bits above 11 are ignored.
    pub const fn new(root: u8, intervals: u16) -> Self {
        Self {
            root: root % 12,
            intervals: intervals & 0x0fff,
        }
    }

    /// The major scale on `root` (0 = C).
    pub const fn major(root: u8) -> Self {
        Self::new(root, Self::MAJOR)
    }

    /// The natural minor scale on `root`.
    pub const fn natural_minor(root: u8) -> Self {
        Self::new(root, Self::NATURAL_MINOR)
    }

    /// The harmonic minor scale on `root` (natural minor with a raised seventh).
    pub const fn harmonic_minor(root: u8) -> Self {
        Self::new(root, Self::HARMONIC_MINOR)
    }

    /// All twelve pitch classes: key lock off.
    pub const fn chromatic() -> Self {
        Self::new(0, 0x0fff)
    }

    /// Pitch class of the tonic.
    pub const fn root(&self) -> u8 {
        self.root
    }

    /// Whether `pitch` (a MIDI note number, any octave) is in the scale.
    pub const fn contains(&self, pitch: u8) -> bool {
        let interval = (pitch % 12 + 12 - self.root) % 12;
        self.intervals & (1 << interval) != 0
    }

    /// The in-scale pitch nearest to `pitch` within 0–127; ties go down. A pitch already in
    /// the scale, or any pitch of an empty scale, is returned unchanged.
    pub fn snap(&self, pitch: u8) -> u8 {
        let pitch = pitch.min(127);
        if self.intervals == 0 || self.contains(pitch) {
            return pitch;
        }
        for distance in 1..12u8 {
            if let Some(below) = pitch.checked_sub(distance) {
                if self.contains(below) {
                    return below;
                }
            }
            let above = pitch + distance;
            if above <= 127 && self.contains(above) {
                return above;
            }
        }
        pitch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes from `(pitch, beats)` pairs played one after another.
    fn melody(steps: &[(u8, f64)]) -> Vec<Note> {
        let mut beat = 0.0;
        steps
            .iter()
            .map(|&(pitch, length)| {
                let note = Note::new(pitch, 90, 0, beat, beat + length);
                beat += length;
                note
            })
            .collect()
    }

    /// Block chords from lists of pitches, one bar (4 beats) each.
    fn chords(progression: &[&[u8]], transpose: u8) -> Vec<Note> {
        progression
            .iter()
            .enumerate()
            .flat_map(|(bar, chord)| {
                chord.iter().map(move |&p| {
                    Note::new(
                        p + transpose,
                        80,
                        0,
                        bar as f64 * 4.0,
                        bar as f64 * 4.0 + 4.0,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn c_major_scale_is_c_major() {
        let scale = melody(&[
            (60, 1.0),
            (62, 1.0),
            (64, 1.0),
            (65, 1.0),
            (67, 1.0),
            (69, 1.0),
            (71, 1.0),
            (72, 1.0),
        ]);
        let key = detect_key(&scale).unwrap();
        assert_eq!((key.root, key.mode), (0, Mode::Major), "{key}");
        assert!(key.correlation > 0.7, "{key:?}");
    }

    #[test]
    fn a_harmonic_minor_melody_is_a_minor() {
        let tune = melody(&[
            (69, 1.0),
            (71, 0.5),
            (72, 0.5),
            (74, 1.0),
            (76, 1.0),
            (77, 0.5),
            (76, 0.5),
            (74, 0.5),
            (72, 0.5),
            (71, 1.0),
            (68, 1.0), // G#: the raised seventh
            (69, 2.0),
            (64, 1.0),
            (72, 1.0),
            (71, 0.5),
            (68, 0.5),
            (69, 2.0),
        ]);
        let key = detect_key(&tune).unwrap();
        assert_eq!((key.root, key.mode), (9, Mode::Minor), "{key}");
        assert_eq!(key.to_string(), "A minor");
    }

    #[test]
    fn transposed_chorale_progressions_find_their_key() {
        // I – IV – V7 – vi – ii6 – V – I in C major, four voices.
        let major: [&[u8]; 7] = [
            &[48, 64, 67, 72],
            &[53, 65, 69, 72],
            &[43, 62, 65, 71],
            &[45, 64, 69, 72],
            &[53, 62, 69, 74],
            &[43, 62, 67, 71],
            &[48, 64, 67, 72],
        ];
        // i – iv – V – i – VI – iv – V – i in A minor (V with the raised G#).
        let minor: [&[u8]; 8] = [
            &[45, 64, 69, 72],
            &[50, 62, 69, 77],
            &[40, 64, 68, 71],
            &[45, 64, 69, 72],
            &[41, 65, 69, 72],
            &[38, 65, 69, 74],
            &[40, 64, 68, 71],
            &[45, 60, 64, 69],
        ];
        for transpose in [0u8, 3, 6, 10] {
            let key = detect_key(&chords(&major, transpose)).unwrap();
            assert_eq!(
                (key.root, key.mode),
                (transpose, Mode::Major),
                "+{transpose}: {key}"
            );
            let key = detect_key(&chords(&minor, transpose)).unwrap();
            let root = (9 + transpose) % 12;
            assert_eq!(
                (key.root, key.mode),
                (root, Mode::Minor),
                "+{transpose}: {key}"
            );
        }
    }

    #[test]
    fn no_key_without_pitched_material() {
        assert_eq!(detect_key(&[]), None);
        let drums = [Note::new(36, 100, 9, 0.0, 1.0)];
        assert_eq!(detect_key(&drums), None);
        let chromatic: Vec<Note> = (60..72).map(|p| Note::new(p, 90, 0, 0.0, 1.0)).collect();
        assert_eq!(detect_key(&chromatic), None, "a flat histogram has no key");
        assert_eq!(
            rank_keys(&[1.0, 0.0, 0.5, 0.0, 0.8, 0.3, 0.0, 0.9, 0.0, 0.4, 0.0, 0.2]).len(),
            24
        );
    }

    #[test]
    fn scales_contain_their_notes_and_snap_to_the_nearest() {
        let c = Scale::major(0);
        let in_c: Vec<u8> = (60..72).filter(|&p| c.contains(p)).collect();
        assert_eq!(in_c, [60, 62, 64, 65, 67, 69, 71]);
        let a_minor = Scale::natural_minor(9);
        assert!((0..128).all(|p| a_minor.contains(p) == c.contains(p)));
        assert!(Scale::harmonic_minor(9).contains(68) && !a_minor.contains(68));
        assert_eq!(
            Key {
                root: 9,
                mode: Mode::Minor,
                correlation: 0.9
            }
            .scale(),
            a_minor
        );

        assert_eq!(c.snap(61), 60, "C# ties between C and D: down");
        assert_eq!(c.snap(66), 65, "F# ties between F and G: down");
        assert_eq!(c.snap(64), 64);
        // C# major has no G: 127 (G) snaps down to F# since G# (128) is out of range.
        assert_eq!(Scale::major(1).snap(127), 126);
        assert_eq!(
            Scale::major(2).snap(0),
            1,
            "D major: C snaps up to C# at the bottom"
        );
        assert_eq!(
            Scale::new(0, 0).snap(61),
            61,
            "an empty scale leaves pitches alone"
        );
        for pitch in 0..=127 {
            let snapped = Scale::harmonic_minor(4).snap(pitch);
            assert!(Scale::harmonic_minor(4).contains(snapped));
            assert!(snapped.abs_diff(pitch) <= 2, "{pitch} -> {snapped}");
            assert_eq!(Scale::chromatic().snap(pitch), pitch);
        }
    }
}
