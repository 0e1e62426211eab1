//! Tempo maps: converting beats (quarter notes) to seconds and back through tempo changes.
//!
//! A MIDI file's tempo is 120 BPM until its first Set Tempo event (SMF 1.0 spec, "Tempo"), and
//! each change holds until the next. [`TempoMap`] stores the changes as piecewise-constant
//! segments with their start in both beats and seconds, so both directions are one binary search
//! plus one multiply.

use serde::{Deserialize, Serialize};

/// One constant-tempo stretch, starting at `beat` (= `seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Segment {
    /// Beat where this tempo starts.
    beat: f64,
    /// The same instant in seconds, accumulated over earlier segments.
    seconds: f64,
    /// Length of one beat at this tempo (the MIDI "microseconds per quarter note" / 1e6).
    seconds_per_beat: f64,
}

/// Piecewise-constant tempo over beats, with exact beats ↔ seconds conversion.
///
/// Always holds at least one segment, starting at beat 0. Positions before beat 0 extrapolate
/// the first tempo.
///
/// # Examples
///
/// ```
/// use continuo::midi::TempoMap;
///
/// // 120 BPM for 4 beats (2 s), then 60 BPM.
/// let map = TempoMap::from_changes(&[(0.0, 120.0), (4.0, 60.0)]);
/// assert_eq!(map.seconds_at(4.0), 2.0);
/// assert_eq!(map.seconds_at(6.0), 4.0);
/// assert_eq!(map.beat_at(4.0), 6.0);
/// assert_eq!(map.bpm_at(5.0), 60.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TempoMap {
    /// Sorted by beat, first at beat 0, no two at the same beat.
    segments: Vec<Segment>,
}

impl Default for TempoMap {
    fn default() -> Self {
        Self::constant(Self::DEFAULT_BPM)
    }
}

impl TempoMap {
    /// The tempo of a MIDI file before its first tempo event.
    pub const DEFAULT_BPM: f64 = 120.0;

    /// One tempo throughout. A non-finite or non-positive `bpm` falls back to
    /// [`TempoMap::DEFAULT_BPM`].
    pub fn constant(bpm: f64) -> Self {
        Self::from_changes(&[(0.0, bpm)])
    }

    /// A map from `(beat, bpm)` changes, in any order.
    ///
    /// Entries with a negative or non-finite beat, or a non-finite or non-positive BPM, are
    /// ignored. When several changes share a beat, the last one in the slice wins, as with
    /// simultaneous MIDI tempo events. Before the first change the tempo is
    /// [`TempoMap::DEFAULT_BPM`].
    pub fn from_changes(changes: &[(f64, f64)]) -> Self {
        let mut valid: Vec<(usize, f64, f64)> = changes
            .iter()
            .enumerate()
            .filter(|(_, (beat, bpm))| {
                beat.is_finite() && *beat >= 0.0 && bpm.is_finite() && *bpm > 0.0
            })
            .map(|(index, &(beat, bpm))| (index, beat, bpm))
            .collect();
        // Sort by beat, keeping slice order among equal beats so "last wins" below holds.
        valid.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));

        let mut segments = vec![Segment {
            beat: 0.0,
            seconds: 0.0,
            seconds_per_beat: 60.0 / Self::DEFAULT_BPM,
        }];
        for (_, beat, bpm) in valid {
            let seconds_per_beat = 60.0 / bpm;
            let last = segments.last_mut().expect("segments is never empty");
            if last.beat == beat {
                last.seconds_per_beat = seconds_per_beat;
            } else {
                let seconds = last.seconds + (beat - last.beat) * last.seconds_per_beat;
                segments.push(Segment {
                    beat,
                    seconds,
                    seconds_per_beat,
                });
            }
        }
        Self { segments }
    }

    /// Seconds from beat 0 to `beat`.
    pub fn seconds_at(&self, beat: f64) -> f64 {
        let index = self.segments.partition_point(|s| s.beat <= beat);
        let segment = self.segments[index.saturating_sub(1)];
        segment.seconds + (beat - segment.beat) * segment.seconds_per_beat
    }

    /// The beat reached `seconds` after beat 0; the inverse of [`TempoMap::seconds_at`].
    pub fn beat_at(&self, seconds: f64) -> f64 {
        let index = self.segments.partition_point(|s| s.seconds <= seconds);
        let segment = self.segments[index.saturating_sub(1)];
        segment.beat + (seconds - segment.seconds) / segment.seconds_per_beat
    }

    /// Tempo in beats per minute at `beat`.
    pub fn bpm_at(&self, beat: f64) -> f64 {
        let index = self.segments.partition_point(|s| s.beat <= beat);
        60.0 / self.segments[index.saturating_sub(1)].seconds_per_beat
    }

    /// This map up to `beat`: later changes are dropped, so the tempo in force at `beat` holds
    /// from there on (a continuation written after a phrase keeps the phrase's last tempo).
    pub fn until(&self, beat: f64) -> Self {
        let kept = self.segments.partition_point(|s| s.beat <= beat).max(1);
        Self {
            segments: self.segments[..kept].to_vec(),
        }
    }

    /// The changes as `(beat, bpm)`, starting with the one at beat 0.
    pub fn changes(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.segments
            .iter()
            .map(|s| (s.beat, 60.0 / s.seconds_per_beat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_120_bpm() {
        let map = TempoMap::default();
        assert_eq!(map.seconds_at(2.0), 1.0);
        assert_eq!(map.beat_at(1.0), 2.0);
        assert_eq!(map.seconds_at(-2.0), -1.0);
    }

    #[test]
    fn several_changes_convert_both_ways() {
        // 120 BPM from 0 (default), 60 BPM from beat 2, 240 BPM from beat 3.
        let map = TempoMap::from_changes(&[(3.0, 240.0), (2.0, 60.0)]);
        assert_eq!(map.seconds_at(2.0), 1.0);
        assert_eq!(map.seconds_at(3.0), 2.0);
        assert_eq!(map.seconds_at(7.0), 3.0);
        for beat in [0.0, 0.5, 1.9, 2.0, 2.7, 3.0, 10.25] {
            let back = map.beat_at(map.seconds_at(beat));
            assert!((back - beat).abs() < 1e-12, "{beat} -> {back}");
        }
        assert_eq!(map.bpm_at(2.5), 60.0);
        assert_eq!(
            map.changes().collect::<Vec<_>>(),
            vec![(0.0, 120.0), (2.0, 60.0), (3.0, 240.0)]
        );
    }

    #[test]
    fn until_keeps_the_tempo_in_force_from_then_on() {
        let map = TempoMap::from_changes(&[(0.0, 100.0), (2.0, 90.0), (6.0, 60.0)]);
        let cut = map.until(4.0);
        assert_eq!(
            cut.changes().collect::<Vec<_>>(),
            vec![(0.0, 100.0), (2.0, 90.0)]
        );
        assert_eq!(cut.bpm_at(10.0), 90.0);
        assert_eq!(map.until(6.0), map, "a change at the cut is kept");
        assert_eq!(map.until(-1.0).changes().count(), 1, "never empty");
    }

    #[test]
    fn last_change_at_a_beat_wins_and_invalid_ones_are_ignored() {
        let map = TempoMap::from_changes(&[
            (0.0, 100.0),
            (0.0, 90.0),
            (1.0, f64::NAN),
            (-1.0, 30.0),
            (1.0, 0.0),
        ]);
        assert_eq!(map.changes().collect::<Vec<_>>(), vec![(0.0, 90.0)]);
        assert_eq!(TempoMap::constant(-5.0), TempoMap::default());
    }
}
