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

/// What the audio thread hands the worker's history, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CapturedEvent {
    /// A note-on or note-off.
    Note(NoteInput),
    /// The host's time jumped back (a transport loop or a relocation) by `by_beats` (< 0):
    /// what follows continues the playing from that earlier position.
    Relocated {
        /// The jump, in beats (negative).
        by_beats: f64,
    },
    /// A block of input audio (its samples are in the audio ring) for the note tracker, whose
    /// notes then enter the history as [`CapturedEvent::Note`]s.
    Audio {
        /// Beat of the block's first sample.
        start_beat: f64,
        /// Beats per sample in this block.
        beats_per_sample: f64,
        /// Samples pushed into the audio ring.
        samples: u32,
        /// Samples of silence after them (audio that did not fit the ring, or a block in which
        /// the tracker is not listening).
        silent: u32,
    },
}

/// Most finished notes kept, whatever the history length (64 bars of dense playing fit).
pub const MAX_HISTORY_NOTES: usize = 4096;

/// Start beat and velocity of a held note, indexed `[channel][pitch]`.
type HeldNotes = [[Option<(f64, f32)>; 128]; 16];

/// Notes from the last `length_beats` beats, plus the ones still held, in *played time*: the
/// host's beats, except that when the host's time jumps back ([`CapturedEvent::Relocated`])
/// everything recorded moves back by the jump. The history then stays in the order it was
/// played, ends where playing resumes, and older passes of a loop roll off the front like any
/// other old notes (otherwise they would never be pruned and prompts would mix passes).
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

    /// Takes one event from the audio thread.
    pub fn apply(&mut self, event: CapturedEvent) {
        match event {
            CapturedEvent::Note(note) => self.add(note),
            CapturedEvent::Relocated { by_beats } => self.shift(by_beats),
            CapturedEvent::Audio { .. } => {}
        }
    }

    /// Moves everything recorded (finished and held notes) by `by_beats`.
    pub fn shift(&mut self, by_beats: f64) {
        if !by_beats.is_finite() {
            return;
        }
        for note in &mut self.notes {
            note.start_beat += by_beats;
            note.end_beat += by_beats;
        }
        for (start_beat, _) in self.held.iter_mut().flatten().flatten() {
            *start_beat += by_beats;
        }
        self.latest_beat += by_beats;
        self.prune();
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
        self.latest_beat = f64::MIN;
        self.notes.clear();
        self.held.iter_mut().for_each(|channel| channel.fill(None));
    }

    fn prune(&mut self) {
        while self.notes.len() > MAX_HISTORY_NOTES {
            self.notes.pop_front();
        }
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

    #[test]
    fn a_looping_transport_keeps_one_history_in_played_order_and_bounded() {
        // A one-bar loop (beats 0–4) played 100 times, one note per beat, history of 2 bars.
        let mut history = PhraseHistory::new(8.0);
        for pass in 0..100 {
            if pass > 0 {
                history.apply(CapturedEvent::Relocated { by_beats: -4.0 });
            }
            for beat in 0..4 {
                let pitch = 60 + (pass % 2) as u8;
                history.apply(CapturedEvent::Note(event(f64::from(beat), true, pitch)));
                history.apply(CapturedEvent::Note(event(
                    f64::from(beat) + 0.5,
                    false,
                    pitch,
                )));
            }
        }
        assert!(
            history.len() <= 12,
            "two bars (and the note ending at their edge) are kept: {}",
            history.len()
        );
        let notes: Vec<(u8, f64)> = history.notes().map(|n| (n.pitch, n.start_beat)).collect();
        // The last pass sits at 0–4 where the host is now, the one before it at -4–0.
        assert_eq!(notes.last(), Some(&(61, 3.0)));
        assert!(notes.contains(&(60, -4.0)) && notes.contains(&(61, 0.0)));
        assert!(
            notes.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "in played order: {notes:?}"
        );
    }

    #[test]
    fn a_held_note_across_the_loop_point_ends_after_it_starts() {
        let mut history = PhraseHistory::new(16.0);
        history.add(event(15.5, true, 60));
        history.apply(CapturedEvent::Relocated { by_beats: -16.0 });
        history.add(event(0.5, false, 60));
        let notes: Vec<(f64, f64)> = history
            .notes()
            .map(|n| (n.start_beat, n.end_beat))
            .collect();
        assert_eq!(notes, vec![(-0.5, 0.5)]);
    }

    #[test]
    fn the_history_is_bounded_whatever_its_length() {
        let mut history = PhraseHistory::new(f64::MAX);
        for index in 0..(MAX_HISTORY_NOTES + 100) {
            let beat = index as f64 * 0.01;
            history.add(event(beat, true, 60));
            history.add(event(beat + 0.005, false, 60));
        }
        assert_eq!(history.len(), MAX_HISTORY_NOTES);
    }
}
