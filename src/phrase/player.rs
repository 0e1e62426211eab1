//! Playback of generated notes on the audio thread: notes arrive positioned in host beats and
//! leave as sample-accurate note-on/note-off events, sorted by time.
//!
//! Real-time safe: fixed capacity, allocated in `new`; no allocation, lock or syscall after.
//! Every note-on gets its note-off: notes that were started are tracked until released, and
//! [`Player::release_all`] ends them all (transport stop, bypass, new phrase, deactivation).

/// A generated note handed from the worker to the audio thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledNote {
    /// Which phrase it belongs to; a newer phrase replaces everything older.
    pub generation: u32,
    /// MIDI note number.
    pub pitch: u8,
    /// MIDI channel (0–15).
    pub channel: u8,
    /// Velocity, 0–1.
    pub velocity: f32,
    /// Note-on position in host beats.
    pub start_beat: f64,
    /// Note-off position in host beats.
    pub end_beat: f64,
}

/// A note event for the host, `timing` samples into the block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoteOut {
    /// Sample offset within the block.
    pub timing: u32,
    /// `true` for note-on.
    pub on: bool,
    /// MIDI channel.
    pub channel: u8,
    /// MIDI note number.
    pub pitch: u8,
    /// Velocity, 0–1.
    pub velocity: f32,
}

/// A fixed-capacity list of events for one block, sorted before sending.
pub struct EventList {
    events: Vec<NoteOut>,
    dropped: u64,
}

impl EventList {
    /// Room for `capacity` events per block.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: Vec::with_capacity(capacity),
            dropped: 0,
        }
    }

    /// Adds an event; counts it as dropped when the list is full (never reallocates).
    pub fn push(&mut self, event: NoteOut) {
        if self.events.len() < self.events.capacity() {
            self.events.push(event);
        } else {
            self.dropped += 1;
        }
    }

    /// Sorts by time, note-offs before note-ons at the same sample (so a repeated pitch is
    /// released before it starts again), and hands the events out, leaving the list empty.
    pub fn drain_sorted(&mut self) -> std::vec::Drain<'_, NoteOut> {
        // `sort_unstable_by` sorts in place: no allocation.
        self.events
            .sort_unstable_by(|a, b| a.timing.cmp(&b.timing).then(a.on.cmp(&b.on)));
        self.events.drain(..)
    }

    /// Events lost because a block held more than the capacity.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    note: ScheduledNote,
    sounding: bool,
}

/// The scheduler: notes waiting to start and notes sounding.
pub struct Player {
    slots: Vec<Slot>,
    generation: u32,
    dropped: u64,
}

impl Player {
    /// Room for `capacity` waiting or sounding notes.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            generation: 0,
            dropped: 0,
        }
    }

    /// The phrase currently scheduled.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Notes that did not fit (dropped, never started).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether anything is waiting or sounding.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty()
    }

    /// Takes a note from the worker. A note of a newer phrase first releases (at `timing`)
    /// and forgets everything of older phrases; a note of an older phrase is ignored.
    pub fn schedule(&mut self, note: ScheduledNote, timing: u32, out: &mut EventList) {
        if note.generation < self.generation {
            return;
        }
        if note.generation > self.generation {
            self.release_all(timing, out);
            self.generation = note.generation;
        }
        if self.slots.len() < self.slots.capacity() {
            self.slots.push(Slot {
                note,
                sounding: false,
            });
        } else {
            self.dropped += 1;
        }
    }

    /// Note-offs (at `timing`) for every sounding note; forgets the waiting ones too.
    pub fn release_all(&mut self, timing: u32, out: &mut EventList) {
        for slot in self.slots.iter().filter(|slot| slot.sounding) {
            out.push(NoteOut {
                timing,
                on: false,
                channel: slot.note.channel,
                pitch: slot.note.pitch,
                velocity: 0.0,
            });
        }
        self.slots.clear();
    }

    /// Emits the events falling in a block of `block_len` samples starting at `start_beat`,
    /// where one sample is `beats_per_sample` beats. Notes whose start has already passed
    /// (e.g. after a variation change) are skipped rather than played late.
    pub fn render(
        &mut self,
        start_beat: f64,
        beats_per_sample: f64,
        block_len: u32,
        out: &mut EventList,
    ) {
        if block_len == 0 || beats_per_sample <= 0.0 {
            return;
        }
        let end_beat = start_beat + f64::from(block_len) * beats_per_sample;
        // The tiny offset keeps beats that land exactly on a sample from rounding down a sample.
        let timing_of = |beat: f64| {
            let samples = ((beat - start_beat) / beats_per_sample + 1e-6)
                .floor()
                .max(0.0);
            (samples as u32).min(block_len - 1)
        };
        let mut index = 0;
        while index < self.slots.len() {
            let slot = &mut self.slots[index];
            let mut on_timing = None;
            if !slot.sounding && slot.note.start_beat < end_beat {
                if slot.note.start_beat < start_beat - beats_per_sample {
                    self.slots.swap_remove(index);
                    continue;
                }
                let timing = timing_of(slot.note.start_beat);
                out.push(NoteOut {
                    timing,
                    on: true,
                    channel: slot.note.channel,
                    pitch: slot.note.pitch,
                    velocity: slot.note.velocity,
                });
                slot.sounding = true;
                on_timing = Some(timing);
            }
            if slot.sounding && slot.note.end_beat < end_beat {
                let timing = timing_of(slot.note.end_beat);
                // A note-off must come after its note-on; if that does not fit in this block
                // the note ends at the start of the next one.
                let timing = match on_timing {
                    Some(on) if timing <= on => on + 1,
                    _ => timing,
                };
                if timing < block_len {
                    out.push(NoteOut {
                        timing,
                        on: false,
                        channel: slot.note.channel,
                        pitch: slot.note.pitch,
                        velocity: 0.0,
                    });
                    self.slots.swap_remove(index);
                    continue;
                }
            }
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(generation: u32, pitch: u8, start_beat: f64, end_beat: f64) -> ScheduledNote {
        ScheduledNote {
            generation,
            pitch,
            channel: 0,
            velocity: 0.8,
            start_beat,
            end_beat,
        }
    }

    /// 120 BPM at 48 kHz: 24 000 samples per beat; blocks of 512.
    const BEATS_PER_SAMPLE: f64 = 1.0 / 24_000.0;

    fn run(player: &mut Player, blocks: u32, out: &mut EventList) -> Vec<(u64, bool, u8)> {
        let mut events = Vec::new();
        for block in 0..blocks {
            let start = f64::from(block * 512) * BEATS_PER_SAMPLE;
            player.render(start, BEATS_PER_SAMPLE, 512, out);
            events.extend(
                out.drain_sorted()
                    .map(|e| (u64::from(block * 512 + e.timing), e.on, e.pitch)),
            );
        }
        events
    }

    #[test]
    fn notes_start_and_end_on_the_right_samples() {
        let mut player = Player::new(16);
        let mut out = EventList::new(16);
        player.schedule(note(1, 60, 0.5, 1.0), 0, &mut out);
        player.schedule(note(1, 64, 1.0, 1.25), 0, &mut out);
        let events = run(&mut player, 100, &mut out);
        assert_eq!(
            events,
            vec![
                (12_000, true, 60),
                (24_000, false, 60),
                (24_000, true, 64),
                (30_000, false, 64)
            ]
        );
        assert!(player.is_idle());
    }

    #[test]
    fn a_new_phrase_releases_the_old_one_and_stale_notes_are_ignored() {
        let mut player = Player::new(16);
        let mut out = EventList::new(16);
        player.schedule(note(1, 60, 0.0, 10.0), 0, &mut out);
        run(&mut player, 1, &mut out);
        player.schedule(note(2, 67, 5.0, 6.0), 7, &mut out);
        let released: Vec<NoteOut> = out.drain_sorted().collect();
        assert_eq!(released.len(), 1);
        assert_eq!(
            (released[0].timing, released[0].on, released[0].pitch),
            (7, false, 60)
        );
        player.schedule(note(1, 72, 5.0, 6.0), 0, &mut out);
        assert_eq!(player.generation(), 2);
        assert_eq!(player.slots.len(), 1, "the older phrase's note was ignored");
    }

    #[test]
    fn release_all_ends_every_sounding_note_and_past_notes_are_skipped() {
        let mut player = Player::new(16);
        let mut out = EventList::new(16);
        player.schedule(note(1, 60, 0.0, 4.0), 0, &mut out);
        player.schedule(note(1, 62, 0.01, 4.0), 0, &mut out);
        run(&mut player, 20, &mut out);
        player.release_all(3, &mut out);
        let offs: Vec<u8> = out
            .drain_sorted()
            .filter(|e| !e.on)
            .map(|e| e.pitch)
            .collect();
        assert_eq!(offs.len(), 2);
        assert!(player.is_idle());
        // A note whose start lies in the past (block starts at beat 2) is dropped, not played late.
        player.schedule(note(1, 65, 1.0, 3.0), 0, &mut out);
        player.render(2.0, BEATS_PER_SAMPLE, 512, &mut out);
        assert_eq!(out.drain_sorted().count(), 0);
        assert!(player.is_idle());
    }

    #[test]
    fn very_short_notes_still_turn_off_after_they_turn_on() {
        let mut player = Player::new(4);
        let mut out = EventList::new(8);
        // Both ends fall on the block's last sample.
        player.schedule(
            note(1, 60, 511.2 * BEATS_PER_SAMPLE, 511.6 * BEATS_PER_SAMPLE),
            0,
            &mut out,
        );
        let events = run(&mut player, 2, &mut out);
        assert_eq!(events, vec![(511, true, 60), (512, false, 60)]);
    }

    #[test]
    fn full_lists_drop_and_count_instead_of_growing() {
        let mut player = Player::new(1);
        let mut out = EventList::new(1);
        player.schedule(note(1, 60, 0.0, 1.0), 0, &mut out);
        player.schedule(note(1, 61, 0.0, 1.0), 0, &mut out);
        assert_eq!(player.dropped(), 1);
        out.push(NoteOut {
            timing: 0,
            on: true,
            channel: 0,
            pitch: 1,
            velocity: 1.0,
        });
        out.push(NoteOut {
            timing: 0,
            on: true,
            channel: 0,
            pitch: 2,
            velocity: 1.0,
        });
        assert_eq!(out.dropped(), 1);
    }
}
