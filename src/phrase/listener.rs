//! The worker's ear: runs the note tracker ([`crate::dsp::notes`]) over the audio Continuo
//! Phrase receives and places the notes it hears in host beats.

use std::collections::VecDeque;

use rtrb::Consumer;

use crate::dsp::notes::{NoteTracker, NoteTrackerConfig, TrackedEvent};
use crate::dsp::DspError;

/// Blocks of audio whose host times are remembered (the tracker's notes lie at most a few
/// tenths of a second in the past).
const BLOCK_MEMORY: usize = 1024;
/// Seconds of block times kept for mapping note times to beats.
const MEMORY_SECONDS: f64 = 2.0;

/// A note start or end the tracker heard, in host beats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeardNote {
    /// Note-on (`true`) or note-off.
    pub on: bool,
    /// MIDI note number.
    pub pitch: u8,
    /// 0–1 (note-ons; 0 for note-offs).
    pub velocity: f32,
    /// Beat the note is estimated to start or end at: what the history records.
    pub beat: f64,
    /// Beat at which the tracker knew: where live MIDI out sends it.
    pub decided_beat: f64,
}

/// Where a block of audio sat in host time.
#[derive(Debug, Clone, Copy)]
struct BlockTime {
    first_sample: u64,
    start_beat: f64,
    beats_per_sample: f64,
}

/// Note tracking on the worker; see the [module docs](self).
pub struct Listener {
    tracker: NoteTracker,
    hop: Vec<f32>,
    filled: usize,
    /// Samples fed to the tracker so far (its clock).
    samples_in: u64,
    blocks: VecDeque<BlockTime>,
    memory_samples: u64,
}

impl Listener {
    /// A tracker with the library's defaults for `sample_rate`.
    ///
    /// # Errors
    /// When the note tracker cannot run at this rate.
    pub fn new(sample_rate: f32) -> Result<Self, DspError> {
        let tracker = NoteTracker::new(NoteTrackerConfig::new(sample_rate))?;
        let hop = tracker.config().hop_size;
        Ok(Self {
            tracker,
            hop: vec![0.0; hop],
            filled: 0,
            samples_in: 0,
            blocks: VecDeque::with_capacity(BLOCK_MEMORY),
            memory_samples: (MEMORY_SECONDS * f64::from(sample_rate)) as u64,
        })
    }

    /// The note sounding now, if any.
    pub fn sounding(&self) -> Option<u8> {
        self.tracker.sounding()
    }

    /// Moves the remembered block times by `by_beats`, as the history moves when the host's
    /// time jumps back, so notes decided after the jump land in the same played time.
    pub fn shift(&mut self, by_beats: f64) {
        if by_beats.is_finite() {
            for block in &mut self.blocks {
                block.start_beat += by_beats;
            }
        }
    }

    /// Analyses one block: `samples` from `audio`, then `silent` samples of silence (audio that
    /// did not fit the ring, or time since listening stopped). Reports each note event heard.
    pub fn hear(
        &mut self,
        audio: &mut Consumer<f32>,
        start_beat: f64,
        beats_per_sample: f64,
        samples: usize,
        silent: usize,
        mut emit: impl FnMut(HeardNote),
    ) {
        if self.blocks.len() == BLOCK_MEMORY {
            self.blocks.pop_front();
        }
        self.blocks.push_back(BlockTime {
            first_sample: self.samples_in,
            start_beat,
            beats_per_sample,
        });
        while self.blocks.len() > 1
            && self.blocks[1].first_sample + self.memory_samples < self.samples_in
        {
            self.blocks.pop_front();
        }
        let available = samples.min(audio.slots());
        if let Ok(chunk) = audio.read_chunk(available) {
            let (first, second) = chunk.as_slices();
            for &x in first.iter().chain(second) {
                self.push(x, &mut emit);
            }
            chunk.commit_all();
        }
        for _ in available..samples + silent {
            self.push(0.0, &mut emit);
        }
    }

    fn push(&mut self, sample: f32, emit: &mut impl FnMut(HeardNote)) {
        self.hop[self.filled] = sample;
        self.filled += 1;
        self.samples_in += 1;
        if self.filled < self.hop.len() {
            return;
        }
        self.filled = 0;
        let (tracker, hop, blocks) = (&mut self.tracker, &self.hop, &self.blocks);
        tracker.process_hop(hop, |event| {
            let (on, pitch, velocity, sample, decided) = match event {
                TrackedEvent::On {
                    pitch,
                    velocity,
                    sample,
                    decided,
                } => (true, pitch, velocity, sample, decided),
                TrackedEvent::Off {
                    pitch,
                    sample,
                    decided,
                } => (false, pitch, 0.0, sample, decided),
            };
            emit(HeardNote {
                on,
                pitch,
                velocity,
                beat: beat_of(blocks, sample),
                decided_beat: beat_of(blocks, decided),
            });
        });
    }
}

/// The host beat of tracker sample `sample`, from the block it fell in (or the oldest one
/// remembered, extended backwards).
fn beat_of(blocks: &VecDeque<BlockTime>, sample: u64) -> f64 {
    blocks
        .iter()
        .rev()
        .find(|block| block.first_sample <= sample)
        .or(blocks.front())
        .map_or(0.0, |block| {
            block.start_beat + (sample as f64 - block.first_sample as f64) * block.beats_per_sample
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtrb::RingBuffer;

    #[test]
    fn notes_are_placed_in_the_beats_of_the_blocks_they_were_played_in() {
        let rate = 48_000.0f32;
        let mut listener = Listener::new(rate).expect("tracker");
        let (mut producer, mut consumer) = RingBuffer::new(1 << 16);
        // 120 BPM: 24 000 samples per beat. A 440 Hz tone from beat 10.5 to beat 11.5, in
        // blocks of 4800 samples starting at beat 10.
        let bps = 120.0 / 60.0 / f64::from(rate);
        let total = 3 * 24_000;
        let signal: Vec<f32> = (0..total)
            .map(|n| {
                let on = (12_000..36_000).contains(&n);
                if on {
                    0.3 * (std::f32::consts::TAU * 440.0 * n as f32 / rate).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let mut heard = Vec::new();
        for (index, block) in signal.chunks(4800).enumerate() {
            for &x in block {
                producer.push(x).expect("room");
            }
            let start_beat = 10.0 + (index * 4800) as f64 * bps;
            listener.hear(&mut consumer, start_beat, bps, block.len(), 0, |note| {
                heard.push(note)
            });
        }
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(heard[0].on && heard[0].pitch == 69 && !heard[1].on);
        assert!((heard[0].beat - 10.5).abs() < 0.04, "{heard:?}");
        assert!((heard[1].beat - 11.5).abs() < 0.08, "{heard:?}");
        assert!(heard[0].decided_beat > heard[0].beat && heard[0].decided_beat < 10.6);
    }
}
