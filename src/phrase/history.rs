//! The rolling record of notes played on the track, in beats.

use std::collections::VecDeque;

/// One finished note, positioned in host beats (quarter notes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedNote {
    /// MIDI note number.
    pub pitch: u8,
    /// MIDI channel (0–15).
    pub channel: u8,
    /// Note-on velocity, 0–1.
    pub velocity: f32,
    /// Beat of the note-on.
    pub start_beat: f64,
    /// Beat of the note-off.
    pub end_beat: f64,
}

impl From<RecordedNote> for crate::midi::Note {
    /// The tokenizer's note type (velocity 1–127).
    fn from(note: RecordedNote) -> Self {
        Self {
            pitch: note.pitch,
            velocity: crate::midi::Note::velocity_from_unit(note.velocity),
            channel: note.channel,
            start_beat: note.start_beat,
            end_beat: note.end_beat,
        }
    }
}

/// A note-on or note-off at a beat position, as captured on the audio thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteInput {
    /// Beat position of the event.
    pub beat: f64,
    /// `true` for note-on.
    pub on: bool,
    /// MIDI channel (0–15).
    pub channel: u8,
    /// MIDI note number.
    pub pitch: u8,
    /// Velocity, 0–1.
    pub velocity: f32,
}

/// Start beat and velocity of a held note, indexed `[channel][pitch]`.
type HeldNotes = [[Option<(f64, f32)>; 128]; 16];

/// Notes from the last `length_beats` beats, plus the ones still held.
pub struct PhraseHistory {
    notes: VecDeque<RecordedNote>,
    /// Start beat and velocity of every held note, by channel and pitch.
    held: Box<HeldNotes>,
    length_beats: f64,
    latest_beat: f64,
}

impl PhraseHistory {
    /// An empty history keeping `length_beats` beats.
    pub fn new(length_beats: f64) -> Self {
        Self {
            notes: VecDeque::new(),
            held: Box::new([[None; 128]; 16]),
            length_beats,
            latest_beat: f64::MIN,
        }
    }

    /// Adds one event. A note-on for a note already held ends the held one first; a note-off for
    /// a note that is not held is ignored.
    pub fn add(&mut self, event: NoteInput) {
        let channel = usize::from(event.channel & 0x0f);
        let pitch = usize::from(event.pitch & 0x7f);
        self.latest_beat = self.latest_beat.max(event.beat);
        if let Some((start_beat, velocity)) = self.held[channel][pitch].take() {
            self.notes.push_back(RecordedNote {
                pitch: pitch as u8,
                channel: channel as u8,
                velocity,
                start_beat,
                end_beat: event.beat.max(start_beat),
            });
        }
        if event.on {
            self.held[channel][pitch] = Some((event.beat, event.velocity));
        }
        self.prune();
    }

    /// Changes how many beats are kept.
    pub fn set_length_beats(&mut self, length_beats: f64) {
        self.length_beats = length_beats.max(0.0);
        self.prune();
    }

    /// Finished notes, oldest note-off first.
    pub fn notes(&self) -> impl Iterator<Item = &RecordedNote> {
        self.notes.iter()
    }

    /// Number of finished notes kept.
    pub fn len(&self) -> usize {
        self.notes.len()
    }

    /// Whether no finished note is kept.
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// Number of notes currently held down.
    pub fn held_count(&self) -> usize {
        self.held
            .iter()
            .flatten()
            .filter(|note| note.is_some())
            .count()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.notes.clear();
        self.held.iter_mut().for_each(|channel| channel.fill(None));
    }

    fn prune(&mut self) {
        let oldest_kept = self.latest_beat - self.length_beats;
        while self
            .notes
            .front()
            .is_some_and(|note| note.end_beat < oldest_kept)
        {
            self.notes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(beat: f64, on: bool, pitch: u8) -> NoteInput {
        NoteInput {
            beat,
            on,
            channel: 0,
            pitch,
            velocity: 0.8,
        }
    }

    #[test]
    fn pairs_note_on_and_off_into_notes() {
        let mut history = PhraseHistory::new(16.0);
        history.add(event(0.0, true, 60));
        history.add(event(0.5, true, 64));
        assert_eq!(history.held_count(), 2);
        history.add(event(1.0, false, 60));
        history.add(event(2.0, false, 64));
        history.add(event(3.0, false, 67)); // never held: ignored
        let notes: Vec<(u8, f64, f64)> = history
            .notes()
            .map(|n| (n.pitch, n.start_beat, n.end_beat))
            .collect();
        assert_eq!(notes, vec![(60, 0.0, 1.0), (64, 0.5, 2.0)]);
        assert_eq!(history.held_count(), 0);
    }

    #[test]
    fn retrigger_closes_the_held_note_and_old_notes_roll_off() {
        let mut history = PhraseHistory::new(4.0);
        history.add(event(0.0, true, 60));
        history.add(event(1.0, true, 60));
        history.add(event(2.0, false, 60));
        assert_eq!(history.len(), 2);
        history.add(event(10.0, true, 62));
        history.add(event(10.5, false, 62));
        let pitches: Vec<u8> = history.notes().map(|n| n.pitch).collect();
        assert_eq!(
            pitches,
            vec![62],
            "notes ending more than 4 beats ago are dropped"
        );
    }
}
