//! Capture of incoming notes: the audio thread stamps each event with its host-beat position
//! and pushes it into an `rtrb` ring; the worker builds the [`PhraseHistory`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use atomic_float::AtomicF64;
use crossbeam_channel::Sender;
use rtrb::{Consumer, Producer, RingBuffer};

use super::history::{NoteInput, PhraseHistory, RecordedNote};
use crate::engine::worker::{Worker, WorkerHandle};

/// Events the ring holds between two worker polls.
const EVENT_CAPACITY: usize = 4096;
/// Tempo used when the host gives none.
pub const DEFAULT_TEMPO_BPM: f64 = 120.0;

/// Values shared between the plugin, the audio thread and the worker (latest value wins).
#[derive(Debug)]
pub struct PhraseShared {
    /// How many beats of history to keep (set from the plugin's parameter).
    pub history_beats: AtomicF64,
    /// Finished notes in the history.
    pub notes_recorded: AtomicU64,
    /// Events lost because a queue (the capture ring or the host's output) was full.
    pub events_dropped: AtomicU64,
    /// Beat position of the latest captured event.
    pub last_event_beat: AtomicF64,
}

/// The host's transport at the start of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransportInfo {
    /// Whether the host transport is playing.
    pub playing: bool,
    /// Host tempo, if the host reports one.
    pub tempo_bpm: Option<f64>,
    /// Host position in beats at the block's first sample, if reported.
    pub pos_beats: Option<f64>,
}

/// Worker control messages.
#[derive(Debug)]
pub enum PhraseCommand {
    /// Reply with a copy of the finished notes.
    Snapshot(Sender<Vec<RecordedNote>>),
    /// Forget the history.
    Clear,
}

/// Starts phrase capture: the audio-thread half, the worker, and the shared values.
///
/// # Errors
/// When the worker thread cannot be created.
pub fn start(
    sample_rate: f32,
    history_beats: f64,
) -> std::io::Result<(
    PhraseCapture,
    WorkerHandle<PhraseCommand>,
    Arc<PhraseShared>,
)> {
    let (events_in, events_out) = RingBuffer::new(EVENT_CAPACITY);
    let shared = Arc::new(PhraseShared {
        history_beats: AtomicF64::new(history_beats),
        notes_recorded: AtomicU64::new(0),
        events_dropped: AtomicU64::new(0),
        last_event_beat: AtomicF64::new(0.0),
    });
    let worker = PhraseWorker {
        events: events_out,
        history: PhraseHistory::new(history_beats),
        shared: shared.clone(),
    };
    let handle = WorkerHandle::spawn("continuo-phrase-worker", worker)?;
    let capture = PhraseCapture {
        events: events_in,
        sample_rate: f64::from(sample_rate),
        free_beat: 0.0,
        block_start_beat: 0.0,
        beats_per_sample: 0.0,
        shared: shared.clone(),
    };
    Ok((capture, handle, shared))
}

/// The audio thread's half. Real-time safe: no allocation, lock or syscall.
pub struct PhraseCapture {
    events: Producer<NoteInput>,
    sample_rate: f64,
    /// Beat clock that runs on at the tempo while the transport is stopped (free time).
    free_beat: f64,
    block_start_beat: f64,
    beats_per_sample: f64,
    shared: Arc<PhraseShared>,
}

impl PhraseCapture {
    /// Sets the beat clock for a block of `block_len` samples from the host transport. A
    /// playing transport's position is used as is; a stopped one lets the clock run freely.
    pub fn begin_block(&mut self, transport: TransportInfo, block_len: usize) {
        let tempo_bpm = transport
            .tempo_bpm
            .filter(|tempo| tempo.is_finite() && *tempo > 0.0)
            .unwrap_or(DEFAULT_TEMPO_BPM);
        self.beats_per_sample = tempo_bpm / 60.0 / self.sample_rate;
        self.block_start_beat = match transport.pos_beats {
            Some(beat) if transport.playing && beat.is_finite() => beat,
            _ => self.free_beat,
        };
        self.free_beat = self.block_start_beat + block_len as f64 * self.beats_per_sample;
    }

    /// Beat position of the sample `timing` samples into the current block.
    pub fn beat_at(&self, timing: u32) -> f64 {
        self.block_start_beat + f64::from(timing) * self.beats_per_sample
    }

    /// Records a note-on (`on`) or note-off at `timing` samples into the block.
    pub fn capture(&mut self, timing: u32, on: bool, channel: u8, pitch: u8, velocity: f32) {
        let event = NoteInput {
            beat: self.beat_at(timing),
            on,
            channel,
            pitch,
            velocity,
        };
        if self.events.push(event).is_err() {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The worker's half: turns events into the history.
struct PhraseWorker {
    events: Consumer<NoteInput>,
    history: PhraseHistory,
    shared: Arc<PhraseShared>,
}

impl Worker for PhraseWorker {
    type Command = PhraseCommand;

    fn handle(&mut self, command: PhraseCommand) {
        match command {
            PhraseCommand::Snapshot(reply) => {
                // The requester may have given up waiting; nothing to do then.
                let _ = reply.send(self.history.notes().copied().collect());
            }
            PhraseCommand::Clear => self.history.clear(),
        }
    }

    fn poll(&mut self) -> bool {
        self.history
            .set_length_beats(self.shared.history_beats.load(Ordering::Relaxed));
        let mut worked = false;
        while let Ok(event) = self.events.pop() {
            self.history.add(event);
            self.shared
                .last_event_beat
                .store(event.beat, Ordering::Relaxed);
            worked = true;
        }
        self.shared
            .notes_recorded
            .store(self.history.len() as u64, Ordering::Relaxed);
        worked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notes_reach_the_history_with_host_beat_positions() {
        let (mut capture, worker, _shared) = start(48_000.0, 32.0).expect("worker thread");
        // 120 BPM at 48 kHz: one beat = 24 000 samples. Block starts at beat 8.
        capture.begin_block(
            TransportInfo {
                playing: true,
                tempo_bpm: Some(120.0),
                pos_beats: Some(8.0),
            },
            48_000,
        );
        capture.capture(0, true, 0, 60, 1.0);
        capture.capture(12_000, false, 0, 60, 0.0);
        capture.capture(24_000, true, 0, 62, 0.5);
        capture.capture(47_999, false, 0, 62, 0.0);
        let (reply, notes) = crossbeam_channel::bounded(1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(worker.send(PhraseCommand::Snapshot(reply)));
        let notes = notes
            .recv_timeout(Duration::from_secs(2))
            .expect("snapshot");
        assert_eq!(notes.len(), 2);
        assert_eq!(
            (notes[0].pitch, notes[0].start_beat, notes[0].end_beat),
            (60, 8.0, 8.5)
        );
        assert_eq!(notes[1].start_beat, 9.0);
        assert!((notes[1].end_beat - (9.0 + 23_999.0 / 24_000.0)).abs() < 1e-9);
    }

    #[test]
    fn stopped_transport_runs_a_free_beat_clock() {
        let (mut capture, _worker, _shared) = start(48_000.0, 32.0).expect("worker thread");
        let stopped = TransportInfo {
            playing: false,
            tempo_bpm: Some(60.0),
            pos_beats: Some(100.0),
        };
        capture.begin_block(stopped, 48_000);
        assert_eq!(capture.beat_at(0), 0.0);
        capture.begin_block(stopped, 48_000);
        assert!(
            (capture.beat_at(0) - 1.0).abs() < 1e-12,
            "one second at 60 BPM is one beat"
        );
        capture.begin_block(
            TransportInfo {
                playing: false,
                tempo_bpm: None,
                pos_beats: None,
            },
            48_000,
        );
        assert!(
            (capture.beat_at(24_000) - 3.0).abs() < 1e-12,
            "no host tempo: 120 BPM"
        );
    }
}
