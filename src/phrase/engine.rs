//! Continuo Phrase's engine, independent of the plugin framework.
//!
//! ```text
//! audio thread (PhraseRealtime)                 worker (PhraseWorker)
//!   input notes, stamped in host beats ─ ring ─►  PhraseHistory
//!   input audio (mono) ─ ring ─────────────────►  Listener (note tracker) ─► PhraseHistory
//!   heard notes (triggers, MIDI out) ◄── ring ─────┘
//!   triggers (Generate / auto / every N bars) ─►  tokenize → token model → sample → notes
//!   Player ◄── ring of ScheduledNote (as each note is decoded) ◄─┘
//!   └─► sample-accurate note events
//! ```
//! Rings are `rtrb` (streams of events: every one matters, a full ring drops and counts).
//! Each request carries how many input events were captured before it, and the worker takes
//! exactly those into the history before handling it: a continuation's prompt is what was
//! played up to its trigger, however late the worker wakes up.
//!
//! When the host's time jumps back (a loop, a relocation), the history moves back with it
//! (see [`PhraseHistory`]), and generated notes are released: their beats would otherwise lie
//! in the future again.
//! In an offline render ([`Timing::Offline`]) the audio thread waits for the worker to answer
//! each request before it plays on, so a bounce has every generated note however slow the
//! machine is (bounded: a worker that misses [`OFFLINE_WAIT_LIMIT`] is not waited for again
//! until it answers).
//!
//! The first model is loaded by [`start`] (the plugin's activate; a re-activation takes it
//! back from the [`ModelShelf`] instead), later ones on the worker, never on the audio thread; its status and problems are reported through [`PhraseShared`]
//! and a status callback (the plugin logs it).
//!
//! Switching models ([`PhraseRequest::Model`]) goes through the same request ring as Generate,
//! so the worker handles it in order: a generation already asked for finishes with the old
//! model (its notes stay scheduled), and the next one uses the new model. A model that fails to
//! load leaves the previous one in place.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atomic_float::{AtomicF32, AtomicF64};
use crossbeam_channel::Sender;
use rtrb::{Consumer, Producer, RingBuffer};

use super::generate::{generate, GenerationSettings, ModelSet, Rng};
use super::history::{CapturedEvent, NoteInput, PhraseHistory, RecordedNote};
use super::listener::{HeardNote, Listener};
use super::metre::Metre;
use super::player::{sample_offset, EventList, Player, ScheduledNote, SoundingNote};
use super::roll::{RollFeed, RollWriter};
use super::texture::Texture;
use crate::engine::audio::{Timing, OFFLINE_WAIT_LIMIT};
use crate::engine::worker::{OfflineWait, Worker, WorkerHandle};
use crate::midi::key::{detect_key, Scale};
use crate::model::{chain_message, BackendChoice, ModelDirs};

/// Input events the ring holds between two worker polls.
const EVENT_CAPACITY: usize = 4096;
/// Generated notes in flight from the worker to the audio thread.
const NOTE_CAPACITY: usize = 2048;
/// Notes the player holds (waiting or sounding).
const PLAYER_CAPACITY: usize = 1024;
/// Note events one block may emit.
const BLOCK_EVENT_CAPACITY: usize = 1024;
/// Seconds of input audio the ring to the note tracker holds.
const AUDIO_RING_SECONDS: f32 = 1.0;
/// Heard notes in flight from the worker to the audio thread.
const HEARD_CAPACITY: usize = 256;
/// After listening stops, the tracker hears this much silence, so a note it was hearing ends.
const TRAILING_SILENCE_SECONDS: f64 = 0.5;
/// MIDI channel of the notes heard in the audio (history and MIDI out): channel 1.
pub const HEARD_CHANNEL: u8 = 0;
/// [`PhraseShared::model_choice`] while no model is loaded.
pub const NO_MODEL: usize = usize::MAX;
/// Tempo used when the host gives none.
pub const DEFAULT_TEMPO_BPM: f64 = 120.0;
/// A backwards step of the host's position larger than this (in beats) is a jump (a loop or a
/// relocation), not a tempo change within a block.
const JUMP_BACK_BEATS: f64 = 0.25;
/// Shortest time between two reports of lost events.
const DROP_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// A continuation starts at a bar line at least this far (in seconds) after its trigger, so the
/// worker has time to produce the first note.
const MIN_LEAD_SECONDS: f64 = 0.05;

/// Values shared between the plugin, the audio thread and the worker (latest value wins).
#[derive(Debug)]
pub struct PhraseShared {
    /// How many beats of history to keep (set from the plugin's parameter).
    pub history_beats: AtomicF64,
    /// Finished notes in the history.
    pub notes_recorded: AtomicU64,
    /// Events lost because a queue (capture ring, note ring, a block's event list, host
    /// output) was full.
    pub events_dropped: AtomicU64,
    /// Generated notes lost: no room in the player, or no room in a block's event list when
    /// they were due (skipped, never played late).
    pub notes_dropped: AtomicU64,
    /// Beat position of the latest captured event.
    pub last_event_beat: AtomicF64,
    /// Continuations generated.
    pub generations: AtomicU64,
    /// Whether a continuation model is loaded.
    pub model_ready: AtomicBool,
    /// Index in [`ModelSource::choices`] of the loaded model; [`NO_MODEL`] before any loads.
    pub model_choice: AtomicUsize,
    /// Requests the worker has handled (an offline render waits for this to catch up).
    pub requests_handled: AtomicU64,
    /// Captured events the worker has taken (an offline render waits for its audio to be heard).
    pub events_handled: AtomicU64,
    /// Offline waits for the worker that timed out (the render then went on without waiting).
    pub offline_stalls: AtomicU64,
    /// Time from picking up a trigger to the first note being ready, in ms (last generation).
    pub first_note_ms: AtomicF32,
    /// The latest problem or status in words (worker and GUI only; never the audio thread).
    pub status: Mutex<String>,
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

/// How generated pitches are kept in key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyLock {
    /// No constraint.
    Off,
    /// The key detected from the phrase being continued.
    Detect,
    /// A given scale.
    Fixed(Scale),
}

/// A request from the audio thread to the worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PhraseRequest {
    /// Generate continuations of the history.
    Generate {
        /// Beat the trigger happened at.
        trigger_beat: f64,
        /// Host tempo then (to turn the lead time into beats).
        tempo_bpm: f64,
        /// Constraints and sampling settings.
        settings: GenerationSettings,
        /// Key lock mode.
        key_lock: KeyLock,
        /// How many different continuations to make.
        variations: u8,
        /// Which one plays (0-based).
        selected: u8,
    },
    /// Play another of the variations already generated.
    Select {
        /// 0-based variation.
        variation: u8,
    },
    /// Load another of [`ModelSource::choices`] for the generations that follow.
    Model {
        /// Index in [`ModelSource::choices`].
        index: u16,
    },
}

/// Worker control messages from non-real-time threads.
#[derive(Debug)]
pub enum PhraseCommand {
    /// Reply with a copy of the finished notes.
    Snapshot(Sender<Vec<RecordedNote>>),
    /// Forget the history.
    Clear,
}

/// A loaded model kept between activations: the worker leaves it here when it stops, and the
/// next [`start`] with the same choice takes it instead of loading again, so re-activating (a
/// new sample rate or block size) costs no model load.
#[derive(Clone, Default)]
pub struct ModelShelf(Arc<Mutex<Option<ShelvedModel>>>);

struct ShelvedModel {
    index: usize,
    model: ModelSet,
    status: String,
}

impl ModelShelf {
    fn put(&self, shelved: ShelvedModel) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(shelved);
        }
    }

    /// The shelved model if it is choice `index` (the shelf is emptied either way).
    fn take(&self, index: usize) -> Option<ShelvedModel> {
        let shelved = self.0.lock().ok()?.take()?;
        (shelved.index == index).then_some(shelved)
    }
}

impl std::fmt::Debug for ModelShelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .0
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().map(|s| s.index));
        f.debug_tuple("ModelShelf").field(&held).finish()
    }
}

/// Where the worker finds its continuation models.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// Model names or manifest paths that [`PhraseRequest::Model`] picks from by index.
    pub choices: Vec<String>,
    /// The choice loaded by [`start`].
    pub initial: usize,
    /// Directories to look in.
    pub dirs: ModelDirs,
    /// Inference backend.
    pub backend: BackendChoice,
    /// The model kept from the previous activation, if any.
    pub shelf: ModelShelf,
}

/// Receives status lines from [`start`] and the worker (the plugin logs them).
pub type StatusCallback = Box<dyn Fn(&str) + Send>;

/// Starts the phrase engine: loads the initial model (a failure is reported, not returned),
/// then the audio-thread half, the worker, and the shared values.
///
/// # Errors
/// When the worker thread cannot be created.
pub fn start(
    sample_rate: f32,
    history_beats: f64,
    model: ModelSource,
    roll: Arc<RollFeed>,
    on_status: StatusCallback,
) -> std::io::Result<(
    PhraseRealtime,
    WorkerHandle<PhraseCommand>,
    Arc<PhraseShared>,
)> {
    let (events_in, events_out) = RingBuffer::new(EVENT_CAPACITY);
    let (requests_in, requests_out) = RingBuffer::new(64);
    let (notes_in, notes_out) = RingBuffer::new(NOTE_CAPACITY);
    let audio_capacity = (sample_rate.max(1.0) * AUDIO_RING_SECONDS) as usize;
    let (audio_in, audio_out) = RingBuffer::new(audio_capacity.clamp(4096, 1 << 21));
    let (heard_in, heard_out) = RingBuffer::new(HEARD_CAPACITY);
    let shared = Arc::new(PhraseShared {
        history_beats: AtomicF64::new(history_beats),
        notes_recorded: AtomicU64::new(0),
        events_dropped: AtomicU64::new(0),
        notes_dropped: AtomicU64::new(0),
        last_event_beat: AtomicF64::new(0.0),
        generations: AtomicU64::new(0),
        model_ready: AtomicBool::new(false),
        model_choice: AtomicUsize::new(NO_MODEL),
        requests_handled: AtomicU64::new(0),
        events_handled: AtomicU64::new(0),
        offline_stalls: AtomicU64::new(0),
        first_note_ms: AtomicF32::new(0.0),
        status: Mutex::new(String::new()),
    });
    let listener = Listener::new(sample_rate);
    let mut worker = PhraseWorker {
        events: events_out,
        audio: audio_out,
        heard: heard_in,
        listener_problem: listener
            .as_ref()
            .err()
            .map(|error| format!("audio input not analysed at {sample_rate} Hz: {error}")),
        listener: listener.ok(),
        requests: requests_out,
        notes: notes_in,
        history: PhraseHistory::new(history_beats),
        shared: shared.clone(),
        events_taken: 0,
        drops_reported: 0,
        last_drop_report: None,
        source: model,
        model: None,
        model_status: String::new(),
        on_status,
        variations: Vec::new(),
        selected: 0,
        roll: RollWriter::new(roll),
        generation: 0,
        rng: Rng::new(0),
    };
    // The initial model is loaded here, on the caller's thread (the plugin's activate, as
    // Style's), not on the worker's first poll: a host that deactivates right away would
    // otherwise wait in the worker's join for a load that it may or may not have started, so
    // how long activate–deactivate takes would depend on thread scheduling.
    match worker.source.shelf.take(worker.source.initial) {
        Some(shelved) => worker.adopt_model(shelved),
        None => worker.load_model(worker.source.initial),
    }
    let handle = WorkerHandle::spawn("continuo-phrase-worker", worker)?;
    let realtime = PhraseRealtime {
        events: events_in,
        audio: audio_in,
        heard: heard_out,
        trailing_silence: 0,
        listened: false,
        requests: requests_in,
        notes: notes_out,
        events_sent: 0,
        requests_sent: 0,
        timing: Timing::Realtime,
        offline_wait: OfflineWait::new(handle.unparker(), OFFLINE_WAIT_LIMIT),
        player: Player::new(PLAYER_CAPACITY),
        output: EventList::new(BLOCK_EVENT_CAPACITY),
        sample_rate: f64::from(sample_rate),
        free_beat: 0.0,
        block_start_beat: 0.0,
        beats_per_sample: 0.0,
        tempo_bpm: DEFAULT_TEMPO_BPM,
        was_playing: false,
        shared: shared.clone(),
    };
    Ok((realtime, handle, shared))
}

/// The audio thread's half. Real-time safe: no allocation, lock or syscall.
pub struct PhraseRealtime {
    events: Producer<CapturedEvent>,
    /// Input audio (mono) for the note tracker.
    audio: Producer<f32>,
    /// Notes the tracker heard.
    heard: Consumer<HeardNote>,
    /// Samples of silence still to send after listening stopped.
    trailing_silence: u64,
    /// Whether this block sent audio to the tracker.
    listened: bool,
    /// Requests, each with the number of events sent before it.
    requests: Producer<(u64, PhraseRequest)>,
    /// Events pushed into `events` so far.
    events_sent: u64,
    /// Requests pushed into `requests` so far.
    requests_sent: u64,
    /// Whether [`Self::render`] waits for the worker's answers (offline renders).
    timing: Timing,
    /// Waits for the worker's answers in offline renders.
    offline_wait: OfflineWait,
    notes: Consumer<ScheduledNote>,
    player: Player,
    output: EventList,
    sample_rate: f64,
    /// Beat clock that runs on at the tempo while the transport is stopped (free time).
    free_beat: f64,
    block_start_beat: f64,
    beats_per_sample: f64,
    tempo_bpm: f64,
    was_playing: bool,
    shared: Arc<PhraseShared>,
}

impl PhraseRealtime {
    /// Sets the beat clock for a block of `block_len` samples from the host transport. A
    /// playing transport's position is used as is; a stopped one lets the clock run freely.
    /// When the transport stops, everything generated is released; when the position jumps
    /// back (a loop), the history follows and generated notes are released.
    pub fn begin_block(&mut self, transport: TransportInfo, block_len: usize) {
        self.tempo_bpm = transport
            .tempo_bpm
            .filter(|tempo| tempo.is_finite() && *tempo > 0.0)
            .unwrap_or(DEFAULT_TEMPO_BPM);
        self.beats_per_sample = self.tempo_bpm / 60.0 / self.sample_rate;
        // Where this block would start if time ran on from the last one.
        let expected = self.free_beat;
        self.block_start_beat = match transport.pos_beats {
            Some(beat) if transport.playing && beat.is_finite() => beat,
            _ => self.free_beat,
        };
        let jump = self.block_start_beat - expected;
        if jump < -JUMP_BACK_BEATS {
            self.send_event(CapturedEvent::Relocated { by_beats: jump });
            self.player.retire(0, &mut self.output);
        }
        self.free_beat = self.block_start_beat + block_len as f64 * self.beats_per_sample;
        self.listened = false;
        if self.was_playing && !transport.playing {
            self.release_all(0);
        }
        self.was_playing = transport.playing;
    }

    /// Beat position of the sample `timing` samples into the current block.
    pub fn beat_at(&self, timing: u32) -> f64 {
        self.block_start_beat + f64::from(timing) * self.beats_per_sample
    }

    /// Tempo of the current block.
    pub fn tempo_bpm(&self) -> f64 {
        self.tempo_bpm
    }

    /// Records an input note-on (`on`) or note-off at `timing` samples into the block.
    pub fn capture(&mut self, timing: u32, on: bool, channel: u8, pitch: u8, velocity: f32) {
        self.send_event(CapturedEvent::Note(NoteInput {
            beat: self.beat_at(timing),
            on,
            channel,
            pitch,
            velocity,
        }));
    }

    /// Sends this block's input audio (channels averaged) to the note tracker.
    pub fn listen<C: AsRef<[f32]>>(&mut self, channels: &[C]) {
        if self.events.slots() == 0 {
            // Without its marker the worker could not tell these samples from the next
            // block's: the block is not heard at all.
            self.count_dropped(1);
            return;
        }
        let frames = channels.first().map_or(0, |channel| channel.as_ref().len());
        let scale = 1.0 / channels.len().max(1) as f32;
        let pushed = frames.min(self.audio.slots());
        if let Ok(chunk) = self.audio.write_chunk_uninit(pushed) {
            chunk.fill_from_iter((0..pushed).map(|frame| {
                channels
                    .iter()
                    .map(|channel| channel.as_ref()[frame])
                    .sum::<f32>()
                    * scale
            }));
        }
        if pushed < frames {
            self.count_dropped(1);
        }
        self.send_audio(pushed, frames - pushed);
        self.trailing_silence = (TRAILING_SILENCE_SECONDS * self.sample_rate) as u64;
    }

    /// A block in which the tracker is not listening: it hears silence for a while, so that a
    /// note it was hearing ends (in the history and at the MIDI output).
    pub fn listen_to_nothing(&mut self, block_len: usize) {
        if self.trailing_silence > 0 {
            self.trailing_silence = self.trailing_silence.saturating_sub(block_len as u64);
            self.send_audio(0, block_len);
        }
    }

    fn send_audio(&mut self, samples: usize, silent: usize) {
        self.send_event(CapturedEvent::Audio {
            start_beat: self.block_start_beat,
            beats_per_sample: self.beats_per_sample,
            samples: samples as u32,
            silent: silent as u32,
        });
        self.listened = true;
    }

    /// Hands each note the tracker heard to `each`, with the sample of this block at which live
    /// MIDI out sends it (where it was decided, or the block's start if that has passed).
    /// Offline, first waits (bounded) for the worker to analyse this block's audio, so a
    /// bounce is the same however slow the machine.
    pub fn take_heard(&mut self, block_len: u32, mut each: impl FnMut(HeardNote, u32)) {
        if self.timing == Timing::Offline && self.listened {
            let shared = &self.shared;
            if !self
                .offline_wait
                .until(&shared.events_handled, self.events_sent)
            {
                shared.offline_stalls.fetch_add(1, Ordering::Relaxed);
            }
        }
        let last = f64::from(block_len.saturating_sub(1));
        while let Ok(note) = self.heard.pop() {
            let offset = sample_offset(
                note.decided_beat,
                self.block_start_beat,
                self.beats_per_sample,
            );
            each(note, offset.clamp(0.0, last) as u32);
        }
    }

    fn send_event(&mut self, event: CapturedEvent) {
        if self.events.push(event).is_ok() {
            self.events_sent += 1;
        } else {
            self.count_dropped(1);
        }
    }

    /// Sends a request to the worker; `false` (and counted as dropped) when its queue is full.
    pub fn request(&mut self, request: PhraseRequest) -> bool {
        let sent = self.requests.push((self.events_sent, request)).is_ok();
        if sent {
            self.requests_sent += 1;
        } else {
            self.count_dropped(1);
        }
        sent
    }

    /// Real time (never wait for the worker: late notes are skipped) or offline (wait for its
    /// answers: a bounce is complete and repeatable).
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// Offline only: waits (bounded) until the worker has handled every request sent.
    fn wait_for_answers(&mut self) {
        let shared = &self.shared;
        if !self
            .offline_wait
            .until(&shared.requests_handled, self.requests_sent)
        {
            shared.offline_stalls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends every generated note (at `timing`) and forgets the scheduled ones.
    pub fn release_all(&mut self, timing: u32) {
        self.player.release_all(timing, &mut self.output);
    }

    /// The generated notes sounding now; the player forgets them (for deactivation: a later
    /// engine's [`Self::adopt_sounding`] sends their note-offs).
    pub fn take_sounding(&mut self) -> impl Iterator<Item = SoundingNote> + '_ {
        self.player.take_sounding()
    }

    /// Takes over notes an earlier engine left sounding; their note-offs go out first thing.
    pub fn adopt_sounding(&mut self, notes: impl IntoIterator<Item = SoundingNote>) {
        self.player.adopt_sounding(notes);
    }

    /// Takes newly generated notes and adds this block's note events to [`Self::output`].
    pub fn render(&mut self, block_len: u32) {
        if self.timing == Timing::Offline {
            self.wait_for_answers();
        }
        while let Ok(note) = self.notes.pop() {
            self.player.schedule(note, 0, &mut self.output);
        }
        self.player.render(
            self.block_start_beat,
            self.beats_per_sample,
            block_len,
            &mut self.output,
        );
        self.publish_drops();
    }

    /// Moves the player's and the event list's loss counts to [`PhraseShared`], where the
    /// worker reports them.
    pub fn publish_drops(&mut self) {
        let notes = self.player.take_dropped();
        if notes > 0 {
            self.shared
                .notes_dropped
                .fetch_add(notes, Ordering::Relaxed);
        }
        let events = self.output.take_dropped();
        if events > 0 {
            self.count_dropped(events);
        }
    }

    /// This block's generated note events; drain sorted.
    pub fn output(&mut self) -> &mut EventList {
        &mut self.output
    }

    /// Counts events lost to full queues.
    pub fn count_dropped(&self, count: u64) {
        self.shared
            .events_dropped
            .fetch_add(count, Ordering::Relaxed);
    }
}

/// The worker's half: history, model, generation.
struct PhraseWorker {
    events: Consumer<CapturedEvent>,
    audio: Consumer<f32>,
    heard: Producer<HeardNote>,
    /// The note tracker (none when it cannot run at this sample rate: see `listener_problem`).
    listener: Option<Listener>,
    /// Why there is no listener, reported the first time audio arrives.
    listener_problem: Option<String>,
    requests: Consumer<(u64, PhraseRequest)>,
    notes: Producer<ScheduledNote>,
    history: PhraseHistory,
    shared: Arc<PhraseShared>,
    /// Events taken from `events` so far (compared with the requests' counts).
    events_taken: u64,
    /// Lost events and notes already reported.
    drops_reported: u64,
    last_drop_report: Option<Instant>,
    source: ModelSource,
    model: Option<ModelSet>,
    /// The status line the current model was loaded with (kept with it on the shelf).
    model_status: String,
    on_status: StatusCallback,
    /// The variations of the latest continuation.
    variations: Vec<Vec<crate::midi::Note>>,
    /// The variation that plays.
    selected: u8,
    /// The editor's piano roll.
    roll: RollWriter,
    generation: u32,
    rng: Rng,
}

impl Drop for PhraseWorker {
    /// Leaves the model on the shelf for the next activation.
    fn drop(&mut self) {
        if let Some(model) = self.model.take() {
            self.source.shelf.put(ShelvedModel {
                index: self.shared.model_choice.load(Ordering::Relaxed),
                model,
                status: std::mem::take(&mut self.model_status),
            });
        }
    }
}

impl PhraseWorker {
    fn report(&self, status: String) {
        (self.on_status)(&status);
        if let Ok(mut current) = self.shared.status.lock() {
            *current = status;
        }
    }

    /// Makes `shelved` the current model, choice `shelved.index`.
    fn adopt_model(&mut self, shelved: ShelvedModel) {
        self.model = Some(shelved.model);
        self.model_status = shelved.status.clone();
        self.shared
            .model_choice
            .store(shelved.index, Ordering::Relaxed);
        self.shared.model_ready.store(true, Ordering::Relaxed);
        self.report(shelved.status);
    }

    /// Loads choice `index`; on failure the current model (if any) stays.
    fn load_model(&mut self, index: usize) {
        if self.shared.model_choice.load(Ordering::Relaxed) == index {
            return;
        }
        let Some(name) = self.source.choices.get(index) else {
            self.report(format!(
                "no continuation model number {index} (there are {})",
                self.source.choices.len()
            ));
            return;
        };
        match ModelSet::load(name, &self.source.dirs, self.source.backend) {
            Ok((model, missing)) => {
                let mut status = format!("continuation model {} ready", model.describe());
                if let Some(missing) = missing {
                    status += &format!(
                        "; the other texture's model is missing, so this one plays both: {}",
                        chain_message(&missing)
                    );
                }
                self.adopt_model(ShelvedModel {
                    index,
                    model,
                    status,
                });
            }
            Err(error) => {
                let status = match &self.model {
                    Some(current) => format!(
                        "continuation model `{name}` not loaded, keeping {}: {}",
                        current.describe(),
                        chain_message(&error)
                    ),
                    None => format!("no continuation model: {}", chain_message(&error)),
                };
                self.report(status);
            }
        }
    }

    /// Of several model switches in a row only the last matters: skips to it. Returns it and
    /// how many requests were skipped.
    fn latest_model_request(&mut self, mut index: u16) -> (u16, u64) {
        let mut skipped = 0;
        while let Ok(&(_, PhraseRequest::Model { index: next })) = self.requests.peek() {
            index = next;
            let _ = self.requests.pop();
            skipped += 1;
        }
        (index, skipped)
    }

    /// Takes captured events into the history: all of them, or (`until`) only as many as the
    /// audio thread had sent in total by then.
    fn take_events(&mut self, until: Option<u64>) -> bool {
        let mut took = false;
        while until.is_none_or(|until| self.events_taken < until) {
            let Ok(event) = self.events.pop() else {
                break;
            };
            self.events_taken += 1;
            took = true;
            self.history.apply(event);
            match event {
                CapturedEvent::Note(note) => {
                    self.shared
                        .last_event_beat
                        .store(note.beat, Ordering::Relaxed);
                }
                CapturedEvent::Audio {
                    start_beat,
                    beats_per_sample,
                    samples,
                    silent,
                } => self.hear(start_beat, beats_per_sample, samples, silent),
                CapturedEvent::Relocated { by_beats } => {
                    if let Some(listener) = &mut self.listener {
                        listener.shift(by_beats);
                    }
                    // The variations follow the history, so that Select still plays them in
                    // played time.
                    for note in self.variations.iter_mut().flatten() {
                        note.start_beat += by_beats;
                        note.end_beat += by_beats;
                    }
                }
            }
        }
        self.shared
            .notes_recorded
            .store(self.history.len() as u64, Ordering::Relaxed);
        self.shared
            .events_handled
            .store(self.events_taken, Ordering::Release);
        took
    }

    /// Runs the note tracker over one block of input audio; what it hears goes into the
    /// history (as if played on [`HEARD_CHANNEL`]) and back to the audio thread.
    fn hear(&mut self, start_beat: f64, beats_per_sample: f64, samples: u32, silent: u32) {
        let Some(listener) = &mut self.listener else {
            // Skip the block's samples, or the ring would fill up.
            let skip = (samples as usize).min(self.audio.slots());
            if let Ok(chunk) = self.audio.read_chunk(skip) {
                chunk.commit_all();
            }
            if let Some(problem) = self.listener_problem.take() {
                self.report(problem);
            }
            return;
        };
        let (history, heard, shared) = (&mut self.history, &mut self.heard, &self.shared);
        listener.hear(
            &mut self.audio,
            start_beat,
            beats_per_sample,
            samples as usize,
            silent as usize,
            |note| {
                history.add(NoteInput {
                    beat: note.beat,
                    on: note.on,
                    channel: HEARD_CHANNEL,
                    pitch: note.pitch,
                    velocity: note.velocity,
                });
                shared.last_event_beat.store(note.beat, Ordering::Relaxed);
                if heard.push(note).is_err() {
                    shared.events_dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
    }

    /// Reports events and notes lost to full queues (at most once per
    /// [`DROP_REPORT_INTERVAL`]).
    fn report_drops(&mut self) {
        let events = self.shared.events_dropped.load(Ordering::Relaxed);
        let notes = self.shared.notes_dropped.load(Ordering::Relaxed);
        let total = events + notes;
        let due = self
            .last_drop_report
            .is_none_or(|last| last.elapsed() >= DROP_REPORT_INTERVAL);
        if total > self.drops_reported && due {
            self.drops_reported = total;
            self.last_drop_report = Some(Instant::now());
            self.report(format!(
                "queues overflowed: {events} events and {notes} generated notes lost so far \
                 (too many notes at once)"
            ));
        }
    }

    fn generate(&mut self, request: PhraseRequest) {
        let PhraseRequest::Generate {
            trigger_beat,
            tempo_bpm,
            mut settings,
            key_lock,
            variations,
            selected,
        } = request
        else {
            return;
        };
        let picked_up = Instant::now();
        if self.model.is_none() {
            self.report("Generate ignored: no continuation model is loaded".into());
            return;
        }
        let (low, high) = settings.pitch_range;
        if low > high {
            // The musician's range, whichever end they set first.
            settings.pitch_range = (high, low);
            self.report(format!(
                "Lowest Note {} is above Highest Note {}: generating between {} and {}",
                key_name(low),
                key_name(high),
                key_name(high),
                key_name(low)
            ));
        }
        let prompt: Vec<crate::midi::Note> =
            self.history.notes().map(|note| (*note).into()).collect();
        if prompt.is_empty() {
            self.report("Generate ignored: nothing has been played yet".into());
            return;
        }
        // Resolved once: it picks the model, and every variation writes it.
        let texture = settings.texture.resolve(&prompt);
        settings.texture = texture.into();
        let Some(model) = self.model.as_mut().and_then(|set| set.for_texture(texture)) else {
            return;
        };
        let model_name = model
            .path()
            .file_stem()
            .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
        settings.scale = match key_lock {
            KeyLock::Off => None,
            KeyLock::Detect => detect_key(&prompt).map(|key| key.scale()),
            KeyLock::Fixed(scale) => Some(scale),
        };
        let metre = Metre::from_beats(settings.beats_per_bar);
        let lead_beats = MIN_LEAD_SECONDS * tempo_bpm / 60.0;
        let start_beat = metre.bar_floor(trigger_beat + lead_beats) + metre.bar_beats();
        self.generation += 1;
        self.variations.clear();
        let mut first_note_ms = None;
        let mut played_notes = 0;
        for variation in 0..variations.max(1) {
            let mut notes = Vec::new();
            let plays = variation == selected;
            let (generation, ring, shared) = (self.generation, &mut self.notes, &self.shared);
            let result = generate(
                model,
                &prompt,
                start_beat,
                &settings,
                &mut self.rng,
                |note| {
                    if plays {
                        first_note_ms
                            .get_or_insert_with(|| picked_up.elapsed().as_secs_f32() * 1000.0);
                        if ring.push(scheduled(generation, &note)).is_err() {
                            shared.events_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    notes.push(note);
                },
            );
            if let Err(error) = result {
                self.report(format!("generation failed: {}", chain_message(&error)));
                return;
            }
            if plays {
                played_notes = notes.len();
            }
            self.variations.push(notes);
        }
        if played_notes == 0 {
            self.report(empty_continuation_reason(&settings));
        } else {
            self.report(format!(
                "generated {played_notes} notes as {} with {model_name}",
                match texture {
                    Texture::Melody => "a melody",
                    Texture::Chords => "chords",
                }
            ));
        }
        self.selected = selected;
        self.roll.mark_changed();
        if let Some(ms) = first_note_ms {
            self.shared.first_note_ms.store(ms, Ordering::Relaxed);
        }
        self.shared.generations.fetch_add(1, Ordering::Relaxed);
    }

    fn select(&mut self, variation: u8) {
        let Some(notes) = self.variations.get(usize::from(variation)) else {
            return;
        };
        self.generation += 1;
        self.selected = variation;
        self.roll.mark_changed();
        for note in notes {
            if self.notes.push(scheduled(self.generation, note)).is_err() {
                self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Publishes the piano roll for the editor (only when it changed and an editor is open).
    fn publish_roll(&mut self) {
        let (history, variations, selected) = (&self.history, &self.variations, self.selected);
        self.roll.publish_if_needed(|roll| {
            roll.history.clear();
            roll.history
                .extend(history.notes().map(|&note| crate::midi::Note::from(note)));
            roll.variations.clone_from(variations);
            roll.selected = usize::from(selected);
        });
    }
}

/// A MIDI key's name as the pitch parameters show it (60 = C4).
fn key_name(pitch: u8) -> String {
    let name = nice_plug::util::KEYS[usize::from(pitch % 12)];
    format!("{name}{}", i32::from(pitch / 12) - 1)
}

/// Why a continuation came out without notes, in words.
fn empty_continuation_reason(settings: &GenerationSettings) -> String {
    let (low, high) = settings.pitch_range;
    let range = format!("{}–{}", key_name(low), key_name(high));
    match settings.scale {
        Some(scale) if !(low..=high).any(|pitch| scale.contains(pitch)) => format!(
            "the continuation is empty: no pitch in the note range {range} is in the locked key"
        ),
        _ => format!(
            "the continuation is empty: the model played no note in the note range {range} \
             within {} bars",
            settings.bars
        ),
    }
}

fn scheduled(generation: u32, note: &crate::midi::Note) -> ScheduledNote {
    ScheduledNote {
        generation,
        pitch: note.pitch,
        channel: note.channel,
        velocity: note.velocity_unit(),
        start_beat: note.start_beat,
        end_beat: note.end_beat,
    }
}

impl Worker for PhraseWorker {
    type Command = PhraseCommand;

    fn handle(&mut self, command: PhraseCommand) {
        match command {
            PhraseCommand::Snapshot(reply) => {
                // The requester may have given up waiting; nothing to do then.
                let _ = reply.send(self.history.notes().copied().collect());
            }
            PhraseCommand::Clear => {
                self.history.clear();
                self.roll.mark_changed();
            }
        }
    }

    fn poll(&mut self) -> bool {
        self.history
            .set_length_beats(self.shared.history_beats.load(Ordering::Relaxed));
        let mut worked = false;
        while let Ok((events_before, request)) = self.requests.pop() {
            // Exactly what was captured before the request: not less (the audio thread pushed
            // it first, so it is there), and not what was played after it.
            self.take_events(Some(events_before));
            match request {
                PhraseRequest::Generate { .. } => self.generate(request),
                PhraseRequest::Select { variation } => self.select(variation),
                PhraseRequest::Model { index } => {
                    let skipped = self.latest_model_request(index);
                    self.load_model(usize::from(skipped.0));
                    self.shared
                        .requests_handled
                        .fetch_add(skipped.1, Ordering::Release);
                }
            }
            self.shared.requests_handled.fetch_add(1, Ordering::Release);
            worked = true;
        }
        worked |= self.take_events(None);
        self.report_drops();
        if worked {
            self.roll.mark_changed();
        }
        self.publish_roll();
        worked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The engine at 48 kHz with 32 beats of history and a model that does not exist.
    fn start_without_model(
        report: StatusCallback,
    ) -> (
        PhraseRealtime,
        WorkerHandle<PhraseCommand>,
        Arc<PhraseShared>,
    ) {
        let no_model = ModelSource {
            choices: vec!["no-such-model".into()],
            initial: 0,
            dirs: ModelDirs::new(Vec::new()),
            backend: BackendChoice::Tract,
            shelf: ModelShelf::default(),
        };
        start(48_000.0, 32.0, no_model, Arc::default(), report).expect("worker")
    }

    #[test]
    fn notes_reach_the_history_with_host_beat_positions() {
        let (mut realtime, worker, _shared) = start_without_model(Box::new(|_| {}));
        // 120 BPM at 48 kHz: one beat = 24 000 samples. Block starts at beat 8.
        let playing = TransportInfo {
            playing: true,
            tempo_bpm: Some(120.0),
            pos_beats: Some(8.0),
        };
        realtime.begin_block(playing, 48_000);
        realtime.capture(0, true, 0, 60, 1.0);
        realtime.capture(12_000, false, 0, 60, 0.0);
        realtime.capture(24_000, true, 0, 62, 0.5);
        realtime.capture(47_999, false, 0, 62, 0.0);
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
        let (mut realtime, _worker, _shared) = start_without_model(Box::new(|_| {}));
        let stopped = TransportInfo {
            playing: false,
            tempo_bpm: Some(60.0),
            pos_beats: Some(100.0),
        };
        realtime.begin_block(stopped, 48_000);
        assert_eq!(realtime.beat_at(0), 0.0);
        realtime.begin_block(stopped, 48_000);
        assert!(
            (realtime.beat_at(0) - 1.0).abs() < 1e-12,
            "one second at 60 BPM is one beat"
        );
        realtime.begin_block(
            TransportInfo {
                playing: false,
                tempo_bpm: None,
                pos_beats: None,
            },
            48_000,
        );
        assert!(
            (realtime.beat_at(24_000) - 3.0).abs() < 1e-12,
            "no host tempo: 120 BPM"
        );
    }

    #[test]
    fn missing_model_is_reported_and_generate_is_ignored_with_a_reason() {
        let (lines_in, lines) = crossbeam_channel::unbounded();
        let report = Box::new(move |line: &str| {
            let _ = lines_in.send(line.to_owned());
        });
        let (mut realtime, _worker, shared) = start_without_model(report);
        let line = lines.recv_timeout(Duration::from_secs(5)).expect("status");
        assert!(
            line.contains("no continuation model named `no-such-model`"),
            "{line}"
        );
        assert!(!shared.model_ready.load(Ordering::Relaxed));
        realtime.request(PhraseRequest::Generate {
            trigger_beat: 0.0,
            tempo_bpm: 120.0,
            settings: GenerationSettings::default(),
            key_lock: KeyLock::Off,
            variations: 1,
            selected: 0,
        });
        let line = lines.recv_timeout(Duration::from_secs(5)).expect("status");
        assert!(line.contains("no continuation model is loaded"), "{line}");
        realtime.render(512);
        assert_eq!(
            realtime.output().drain_sorted().count(),
            0,
            "no output without a model"
        );
    }

    #[test]
    fn a_jump_back_moves_the_history_with_the_host() {
        let (mut realtime, worker, _shared) = start_without_model(Box::new(|_| {}));
        let playing = |beat: f64| TransportInfo {
            playing: true,
            tempo_bpm: Some(120.0),
            pos_beats: Some(beat),
        };
        // Blocks of two beats: 14–16, then the loop jumps back to 0 with a note held.
        realtime.begin_block(playing(14.0), 48_000);
        realtime.capture(12_000, true, 0, 60, 1.0);
        realtime.capture(24_000, false, 0, 60, 0.0);
        realtime.capture(36_000, true, 0, 62, 1.0);
        realtime.begin_block(playing(0.0), 48_000);
        realtime.capture(12_000, false, 0, 62, 0.0);
        let (reply, notes) = crossbeam_channel::bounded(1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(worker.send(PhraseCommand::Snapshot(reply)));
        let notes = notes
            .recv_timeout(Duration::from_secs(2))
            .expect("snapshot");
        let positions: Vec<(u8, f64, f64)> = notes
            .iter()
            .map(|n| (n.pitch, n.start_beat, n.end_beat))
            .collect();
        // Played time: the pass before the loop point lies just before the new position.
        assert_eq!(positions, vec![(60, -1.5, -1.0), (62, -0.5, 0.5)]);
    }

    #[test]
    fn lost_events_are_counted_and_reported() {
        let (lines_in, lines) = crossbeam_channel::unbounded();
        let report = Box::new(move |line: &str| {
            let _ = lines_in.send(line.to_owned());
        });
        let (mut realtime, _worker, shared) = start_without_model(report);
        let note = crate::phrase::player::NoteOut {
            timing: 0,
            on: false,
            channel: 0,
            pitch: 60,
            velocity: 0.0,
        };
        for _ in 0..BLOCK_EVENT_CAPACITY + 3 {
            realtime.output().push(note);
        }
        realtime.render(512);
        assert_eq!(shared.events_dropped.load(Ordering::Relaxed), 3);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(5))
                .expect("a report of the lost events");
            if line.contains("queues overflowed: 3 events") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{line}");
        }
    }
}
