//! What Phrase's editor draws as a piano roll: the history it heard and the continuation's
//! variations, published by the worker through a triple buffer (wait-free on both sides) and
//! only while an editor is open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use atomic_float::AtomicF64;
use triple_buffer::{triple_buffer, Input, Output};

use crate::midi::Note;

/// One picture of the roll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PianoRoll {
    /// Finished notes in the history, in host beats.
    pub history: Vec<Note>,
    /// The latest continuation's variations, in host beats.
    pub variations: Vec<Vec<Note>>,
    /// The variation that plays (0-based).
    pub selected: usize,
}

/// The link between one plugin instance's workers and its editor. It outlives activations:
/// each worker borrows the writing end while it runs and gives it back when it stops.
pub struct RollFeed {
    open: AtomicBool,
    /// Host beat at the start of the latest block (written by the audio thread).
    playhead_beat: AtomicF64,
    /// Quarter notes per bar in the host's time signature then.
    bar_beats: AtomicF64,
    writer: Mutex<Option<Input<PianoRoll>>>,
    reader: Mutex<Output<PianoRoll>>,
}

impl Default for RollFeed {
    fn default() -> Self {
        let (writer, reader) = triple_buffer(&PianoRoll::default());
        Self {
            open: AtomicBool::new(false),
            playhead_beat: AtomicF64::new(0.0),
            bar_beats: AtomicF64::new(4.0),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
        }
    }
}

impl RollFeed {
    /// Whether an editor is open (workers publish only then).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Called by the editor when it opens and closes.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    /// Audio thread: the block's start beat and the bar's length in beats (atomic stores).
    pub fn set_playhead(&self, beat: f64, bar_beats: f64) {
        self.playhead_beat.store(beat, Ordering::Relaxed);
        self.bar_beats.store(bar_beats, Ordering::Relaxed);
    }

    /// Quarter notes per bar in the host's time signature at the latest block.
    pub fn bar_beats(&self) -> f64 {
        self.bar_beats.load(Ordering::Relaxed)
    }

    /// The host beat at the start of the latest block.
    pub fn playhead(&self) -> f64 {
        self.playhead_beat.load(Ordering::Relaxed)
    }

    /// Worker start: takes the writing end (`None` while another worker holds it).
    pub fn take_writer(&self) -> Option<Input<PianoRoll>> {
        self.writer.lock().ok()?.take()
    }

    /// Worker stop: gives the writing end back for the next worker.
    pub fn return_writer(&self, writer: Input<PianoRoll>) {
        if let Ok(mut slot) = self.writer.lock() {
            *slot = Some(writer);
        }
    }

    /// Editor: copies the latest roll into `roll`, or with `only_if_newer` only when one was
    /// published since the last call; `true` when it copied.
    pub fn copy_latest(&self, roll: &mut PianoRoll, only_if_newer: bool) -> bool {
        let Ok(mut reader) = self.reader.lock() else {
            return false;
        };
        let copy = reader.update() || !only_if_newer;
        if copy {
            roll.clone_from(reader.output_buffer());
        }
        copy
    }
}

/// The worker's end: it republishes when something changed and an editor is open.
pub struct RollWriter {
    feed: std::sync::Arc<RollFeed>,
    writer: Option<Input<PianoRoll>>,
    /// Something changed since the last publication.
    dirty: bool,
}

impl RollWriter {
    /// Borrows `feed`'s writing end until dropped.
    pub fn new(feed: std::sync::Arc<RollFeed>) -> Self {
        let writer = feed.take_writer();
        Self {
            feed,
            writer,
            dirty: true,
        }
    }

    /// Something the roll shows has changed.
    pub fn mark_changed(&mut self) {
        self.dirty = true;
    }

    /// Publishes the roll `fill` writes when it changed and an editor is open. `fill` must
    /// write every field: it is handed an older roll, whose capacity it reuses.
    pub fn publish_if_needed(&mut self, fill: impl FnOnce(&mut PianoRoll)) {
        if !self.dirty || !self.feed.is_open() {
            return;
        }
        if let Some(writer) = &mut self.writer {
            fill(writer.input_buffer_mut());
            writer.publish();
            self.dirty = false;
        }
    }
}

impl Drop for RollWriter {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.feed.return_writer(writer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn note(pitch: u8, start_beat: f64) -> Note {
        Note {
            pitch,
            velocity: 90,
            channel: 0,
            start_beat,
            end_beat: start_beat + 1.0,
        }
    }

    #[test]
    fn a_roll_reaches_the_editor_only_while_it_is_open_and_outlives_the_worker() {
        let feed = Arc::new(RollFeed::default());
        let mut seen = PianoRoll::default();
        let mut writer = RollWriter::new(feed.clone());
        writer.publish_if_needed(|roll| roll.history = vec![note(60, 0.0)]);
        assert!(!feed.copy_latest(&mut seen, true), "nothing while closed");

        feed.set_open(true);
        writer.publish_if_needed(|roll| roll.history = vec![note(62, 1.0)]);
        assert!(feed.copy_latest(&mut seen, true));
        assert_eq!(seen.history, vec![note(62, 1.0)]);
        // Nothing changed: no new publication.
        writer.publish_if_needed(|roll| roll.history.clear());
        assert!(!feed.copy_latest(&mut seen, true));
        assert_eq!(seen.history.len(), 1);

        // The next worker (after a re-activation) writes through the same feed.
        drop(writer);
        let mut next = RollWriter::new(feed.clone());
        next.mark_changed();
        next.publish_if_needed(|roll| {
            *roll = PianoRoll {
                selected: 2,
                ..PianoRoll::default()
            }
        });
        assert!(feed.copy_latest(&mut seen, true));
        assert_eq!(seen.selected, 2);
    }
}
