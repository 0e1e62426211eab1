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

    /// Adds an event; `false` (and counted as dropped) when the list is full (never
    /// reallocates).
    pub fn push(&mut self, event: NoteOut) -> bool {
        if self.events.len() < self.events.capacity() {
            self.events.push(event);
            true
        } else {
            self.dropped += 1;
            false
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

    /// Events that did not fit since the last call (a block held more than the capacity).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Not started yet.
    Waiting,
    /// Note-on sent.
    Sounding,
    /// Note-on sent and the note must end as soon as its note-off fits (released while the
    /// event list was full).
    Releasing,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    note: ScheduledNote,
    state: SlotState,
}

/// A note that was still sounding when the player was taken apart (deactivation): its pitch
/// and channel, so that the next player can send its note-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoundingNote {
    /// MIDI channel.
    pub channel: u8,
    /// MIDI note number.
    pub pitch: u8,
}

/// Where `beat` falls relative to a block starting at `start_beat`: the nearest sample (ties go
/// to the later one). Rounding, not flooring: host positions are themselves rounded (CLAP's
/// fixed-point beats are 2^-31 beat steps, about 1e-5 samples), and a block start rounded up by
/// that much must not move a note that lies exactly on a sample one sample earlier.
pub(crate) fn sample_offset(beat: f64, start_beat: f64, beats_per_sample: f64) -> f64 {
    ((beat - start_beat) / beats_per_sample + 0.5).floor()
}

/// The scheduler: notes waiting to start and notes sounding.
pub struct Player {
    slots: Vec<Slot>,
    generation: u32,
    /// Notes of phrases older than this are ignored (see [`Player::retire`]).
    first_accepted: u32,
    dropped: u64,
}

impl Player {
    /// Room for `capacity` waiting or sounding notes.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            generation: 0,
            first_accepted: 0,
            dropped: 0,
        }
    }

    /// The phrase currently scheduled.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Notes lost since the last call: no room to hold them, or no room in a block's event list
    /// when they were due (they are then skipped, never played late).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Whether anything is waiting or sounding.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty()
    }

    /// Takes a note from the worker. A note of a newer phrase first releases (at `timing`)
    /// and forgets everything of older phrases; a note of an older phrase is ignored.
    pub fn schedule(&mut self, note: ScheduledNote, timing: u32, out: &mut EventList) {
        if note.generation < self.generation.max(self.first_accepted) {
            return;
        }
        if note.generation > self.generation {
            self.release_all(timing, out);
            self.generation = note.generation;
        }
        if self.slots.len() < self.slots.capacity() {
            self.slots.push(Slot {
                note,
                state: SlotState::Waiting,
            });
        } else {
            self.dropped += 1;
        }
    }

    /// Note-offs (at `timing`) for every sounding note; forgets the waiting ones. A note whose
    /// note-off does not fit in `out` keeps sounding and is released in the next block.
    pub fn release_all(&mut self, timing: u32, out: &mut EventList) {
        let mut index = 0;
        while index < self.slots.len() {
            let slot = &mut self.slots[index];
            let ended = match slot.state {
                SlotState::Waiting => true,
                SlotState::Sounding | SlotState::Releasing => {
                    out.push(note_off(&slot.note, timing))
                }
            };
            if ended {
                self.slots.swap_remove(index);
            } else {
                slot.state = SlotState::Releasing;
                index += 1;
            }
        }
    }

    /// [`Self::release_all`], and notes of the phrases scheduled so far that are still on their
    /// way from the worker are ignored too: for when the host's time jumps back, which would put
    /// their beats in the future again.
    pub fn retire(&mut self, timing: u32, out: &mut EventList) {
        self.release_all(timing, out);
        self.first_accepted = self.generation.wrapping_add(1).max(self.first_accepted);
    }

    /// The notes sounding now (to be released by another player); forgets everything.
    pub fn take_sounding(&mut self) -> impl Iterator<Item = SoundingNote> + '_ {
        self.slots
            .drain(..)
            .filter(|slot| slot.state != SlotState::Waiting)
            .map(|slot| SoundingNote {
                channel: slot.note.channel,
                pitch: slot.note.pitch,
            })
    }

    /// Takes over notes another player left sounding: their note-offs go out with the next
    /// block (or [`Self::release_all`]). Notes beyond the capacity are counted as dropped.
    pub fn adopt_sounding(&mut self, notes: impl IntoIterator<Item = SoundingNote>) {
        for sounding in notes {
            if self.slots.len() < self.slots.capacity() {
                self.slots.push(Slot {
                    note: ScheduledNote {
                        generation: self.generation,
                        pitch: sounding.pitch,
                        channel: sounding.channel,
                        velocity: 0.0,
                        start_beat: f64::NEG_INFINITY,
                        end_beat: f64::NEG_INFINITY,
                    },
                    state: SlotState::Releasing,
                });
            } else {
                self.dropped += 1;
            }
        }
    }

    /// Emits the events falling in a block of `block_len` samples starting at `start_beat`,
    /// where one sample is `beats_per_sample` beats. A beat belongs to the block holding its
    /// nearest sample. Notes whose start has already passed by more than a sample (e.g. after a
    /// variation change) are skipped rather than played late; note-offs that are late (or did
    /// not fit in an earlier block) go out at the block's first sample.
    pub fn render(
        &mut self,
        start_beat: f64,
        beats_per_sample: f64,
        block_len: u32,
        out: &mut EventList,
    ) {
        if block_len == 0 || !beats_per_sample.is_finite() || beats_per_sample <= 0.0 {
            return;
        }
        let block_end = f64::from(block_len);
        let offset = |beat: f64| sample_offset(beat, start_beat, beats_per_sample);
        let mut index = 0;
        while index < self.slots.len() {
            let slot = &mut self.slots[index];
            let mut on_timing = None;
            if slot.state == SlotState::Waiting {
                let on = offset(slot.note.start_beat);
                if on >= block_end {
                    index += 1;
                    continue;
                }
                let timing = on.max(0.0) as u32;
                if on < -1.0 || !out.push(note_on(&slot.note, timing)) {
                    self.dropped += 1;
                    self.slots.swap_remove(index);
                    continue;
                }
                slot.state = SlotState::Sounding;
                on_timing = Some(timing);
            }
            let off = match slot.state {
                SlotState::Releasing => 0.0,
                _ => offset(slot.note.end_beat),
            };
            if off < block_end {
                // A note-off must come after its note-on; if that does not fit in this block
                // the note ends at the start of the next one.
                let timing = match on_timing {
                    Some(on) => (off.max(0.0) as u32).max(on + 1),
                    None => off.max(0.0) as u32,
                };
                // A note-off that does not fit in the list keeps the note sounding: it is
                // retried next block rather than lost.
                if timing < block_len && out.push(note_off(&slot.note, timing)) {
                    self.slots.swap_remove(index);
                    continue;
                }
            }
            index += 1;
        }
    }
}

fn note_on(note: &ScheduledNote, timing: u32) -> NoteOut {
    NoteOut {
        timing,
        on: true,
        channel: note.channel,
        pitch: note.pitch,
        velocity: note.velocity,
    }
}

fn note_off(note: &ScheduledNote, timing: u32) -> NoteOut {
    NoteOut {
        timing,
        on: false,
        channel: note.channel,
        pitch: note.pitch,
        velocity: 0.0,
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
        assert_eq!(player.take_dropped(), 1);
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
        assert_eq!(out.take_dropped(), 1);
    }

    #[test]
    fn a_note_on_a_sample_stays_there_when_the_host_rounds_the_block_start_up() {
        // CLAP positions are fixed point (2^-31 beat): beat 14.08 arrives as 14.08 + 1.5e-10.
        let host_start = (14.08f64 * 2f64.powi(31)).round() / 2f64.powi(31);
        assert!(host_start > 14.08);
        let mut player = Player::new(4);
        let mut out = EventList::new(8);
        // 14 + 1/12 beats is sample 338 000 at 24 000 samples per beat: 80 into the block.
        player.schedule(note(1, 60, 14.0 + 1.0 / 12.0, 14.5), 0, &mut out);
        player.render(host_start, BEATS_PER_SAMPLE, 256, &mut out);
        let ons: Vec<u32> = out
            .drain_sorted()
            .filter(|e| e.on)
            .map(|e| e.timing)
            .collect();
        assert_eq!(ons, vec![80]);
    }

    #[test]
    fn beats_between_samples_go_to_the_nearest_one_in_one_block_only() {
        // Block boundary at sample 512; notes 0.4 and 0.6 samples before it.
        let mut player = Player::new(4);
        let mut out = EventList::new(8);
        player.schedule(note(1, 60, 511.6 * BEATS_PER_SAMPLE, 1.0), 0, &mut out);
        player.schedule(note(1, 62, 511.4 * BEATS_PER_SAMPLE, 1.0), 0, &mut out);
        let events = run(&mut player, 2, &mut out);
        let ons: Vec<(u64, u8)> = events.iter().filter(|e| e.1).map(|e| (e.0, e.2)).collect();
        assert_eq!(ons, vec![(511, 62), (512, 60)]);
    }

    #[test]
    fn a_note_off_that_does_not_fit_keeps_the_note_until_the_next_block() {
        let mut player = Player::new(4);
        let mut out = EventList::new(1);
        player.schedule(note(1, 60, 0.0, 100.0 * BEATS_PER_SAMPLE), 0, &mut out);
        player.render(0.0, BEATS_PER_SAMPLE, 512, &mut out);
        // The list holds only the note-on: the note-off at sample 100 does not fit.
        let first: Vec<(u32, bool)> = out.drain_sorted().map(|e| (e.timing, e.on)).collect();
        assert_eq!(first, vec![(0, true)]);
        assert!(
            !player.is_idle(),
            "the note is still sounding, not forgotten"
        );
        player.render(512.0 * BEATS_PER_SAMPLE, BEATS_PER_SAMPLE, 512, &mut out);
        let second: Vec<(u32, bool)> = out.drain_sorted().map(|e| (e.timing, e.on)).collect();
        assert_eq!(
            second,
            vec![(0, false)],
            "released first thing in the next block"
        );
        assert!(player.is_idle());
        assert_eq!(
            out.take_dropped(),
            1,
            "the event that did not fit is counted"
        );
    }

    #[test]
    fn release_all_into_a_full_list_releases_in_the_next_block() {
        let mut player = Player::new(4);
        let mut out = EventList::new(2);
        player.schedule(note(1, 60, 0.0, 4.0), 0, &mut out);
        player.schedule(note(1, 64, 0.0, 4.0), 0, &mut out);
        player.render(0.0, BEATS_PER_SAMPLE, 512, &mut out);
        // The two note-ons fill the list: neither note-off fits now.
        player.release_all(10, &mut out);
        assert_eq!(out.drain_sorted().filter(|e| !e.on).count(), 0);
        player.render(512.0 * BEATS_PER_SAMPLE, BEATS_PER_SAMPLE, 512, &mut out);
        let offs: Vec<(u32, u8)> = out
            .drain_sorted()
            .filter(|e| !e.on)
            .map(|e| (e.timing, e.pitch))
            .collect();
        assert_eq!(offs.len(), 2, "{offs:?}");
        assert!(player.is_idle());
    }

    #[test]
    fn sounding_notes_outlive_the_player_and_retired_phrases_stay_out() {
        let mut player = Player::new(4);
        let mut out = EventList::new(8);
        player.schedule(note(3, 60, 0.0, 4.0), 0, &mut out);
        player.schedule(note(3, 67, 2.0, 4.0), 0, &mut out);
        player.render(0.0, BEATS_PER_SAMPLE, 512, &mut out);
        out.drain_sorted().for_each(drop);
        let left: Vec<SoundingNote> = player.take_sounding().collect();
        assert_eq!(
            left,
            vec![SoundingNote {
                channel: 0,
                pitch: 60
            }],
            "only started notes"
        );
        let mut next = Player::new(4);
        next.adopt_sounding(left);
        next.render(0.0, BEATS_PER_SAMPLE, 512, &mut out);
        let offs: Vec<(u32, bool, u8)> = out
            .drain_sorted()
            .map(|e| (e.timing, e.on, e.pitch))
            .collect();
        assert_eq!(offs, vec![(0, false, 60)]);

        // After a jump back, notes of phrase 3 still arriving are ignored; phrase 4 plays.
        player.schedule(note(3, 60, 0.0, 4.0), 0, &mut out);
        player.retire(0, &mut out);
        player.schedule(note(3, 62, 0.0, 4.0), 0, &mut out);
        assert!(player.is_idle());
        player.schedule(note(4, 64, 0.0, 4.0), 0, &mut out);
        assert!(!player.is_idle());
    }
}
