//! The instrument on the real-time engine: what the plugin and the offline renderer (CLI,
//! tests, evaluation) both drive, so the CLI is a faithful test of the plugin.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::engine::audio::{self, AudioCommand, AudioEngine, EngineConfig, MixGain, Timing};
use crate::engine::worker::WorkerHandle;
use crate::midi::{Note, Song};
use crate::model::{BackendChoice, ModelDirs};
use crate::style::decoder::VoiceModels;
use crate::style::{StyleChoice, StyleError, StyleStatus, TimbreModel};

use super::processor::{
    note_queue, InstrumentProcessor, InstrumentStats, NoteAction, NoteSender, TimedNote, VoiceBank,
};
use super::settings::SharedVoiceSettings;

/// Loads the models of `choice` into a bank of voices at `rate` Hz. A style B that cannot be
/// loaded does not stop A: it is returned beside the bank (the plugin plays A alone and says
/// why; the CLI refuses).
///
/// # Errors
/// Style A cannot be loaded, or the synthesiser cannot run at `rate`.
pub fn load_bank(
    choice: &StyleChoice,
    dirs: &ModelDirs,
    backend: BackendChoice,
    rate: u32,
    status: Arc<StyleStatus>,
) -> Result<(VoiceBank, Option<StyleError>), StyleError> {
    let a = TimbreModel::load(&choice.a, dirs, backend)?;
    let (b, refused) = match &choice.b {
        Some(name) => match TimbreModel::load(name, dirs, backend) {
            Ok(b) => (Some(b), None),
            Err(error) => (None, Some(error)),
        },
        None => (None, None),
    };
    Ok((VoiceBank::new(VoiceModels { a, b }, rate, status)?, refused))
}

/// The instrument's engine: the audio-thread half, the note queue into the worker and the
/// channel new model banks arrive on. Field order is drop order: the worker stops last.
pub struct InstrumentEngine {
    engine: AudioEngine,
    notes: NoteSender,
    banks: Sender<VoiceBank>,
    stats: Arc<InstrumentStats>,
    worker: WorkerHandle<AudioCommand<InstrumentProcessor>>,
}

impl InstrumentEngine {
    /// Starts the worker at `rate` Hz for `channels` outputs and blocks of up to `max_block`,
    /// playing `bank` (`None`: silent until [`InstrumentEngine::switch`]).
    ///
    /// # Errors
    /// The worker thread cannot be created.
    pub fn start(
        rate: u32,
        channels: usize,
        max_block: usize,
        bank: Option<VoiceBank>,
        settings: Arc<SharedVoiceSettings>,
        status: Arc<StyleStatus>,
    ) -> std::io::Result<Self> {
        let (notes, events) = note_queue();
        let (banks, bank_receiver) = crossbeam_channel::unbounded();
        let stats = Arc::new(InstrumentStats::default());
        let processor = InstrumentProcessor::new(
            rate,
            bank,
            events,
            bank_receiver,
            settings,
            stats.clone(),
            status,
        );
        let config = EngineConfig {
            sample_rate: rate as f32,
            channels,
            max_block_size: max_block,
        };
        let (engine, worker) = audio::start(config, processor)?;
        Ok(Self {
            engine,
            notes,
            banks,
            stats,
            worker,
        })
    }

    /// Latency to report to the host, in samples: a note played at sample `n` of the stream
    /// starts sounding at output sample `n + latency`.
    pub fn latency_samples(&self) -> usize {
        self.engine.latency_samples()
    }

    /// The engine's counters (misses, worker load).
    pub fn engine_stats(&self) -> &Arc<crate::engine::audio::EngineStats> {
        self.engine.stats()
    }

    /// The instrument's counters (notes, stealing, notes outside the trained range).
    pub fn stats(&self) -> &Arc<InstrumentStats> {
        &self.stats
    }

    /// Queues `action` at `offset` samples into the next block passed to
    /// [`InstrumentEngine::process`]. Real-time safe; a full queue drops the event (counted).
    pub fn send(&mut self, offset: usize, action: NoteAction) {
        let event = TimedNote {
            index: self.engine.stream_position() + offset as u64,
            action,
        };
        if self.notes.push(event).is_err() {
            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands a newly loaded bank to the worker (its notes crossfade over); `false` if the
    /// worker has stopped.
    pub fn switch(&self, bank: VoiceBank) -> bool {
        let sent = self.banks.send(bank).is_ok();
        self.worker.wake();
        sent
    }

    /// Where a loader thread sends newly loaded banks (what [`InstrumentEngine::switch`] does;
    /// the worker picks them up at its next hop).
    pub fn bank_sender(&self) -> Sender<VoiceBank> {
        self.banks.clone()
    }

    /// Renders one block into `channels` (whatever they held is replaced). Real-time safe in
    /// [`Timing::Realtime`].
    pub fn process(
        &mut self,
        channels: &mut [&mut [f32]],
        timing: Timing,
        mix_gain: impl FnMut() -> MixGain,
    ) {
        // An instrument has no input: the engine's dry path is silence.
        for channel in channels.iter_mut() {
            channel.fill(0.0);
        }
        self.engine.process(channels, timing, mix_gain);
    }

    /// Back to silence at the next block (all notes cut, the stream restarted).
    pub fn reset(&mut self) {
        self.engine.reset();
    }
}

/// A note in samples, for offline rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledNote {
    /// MIDI note number.
    pub note: u8,
    /// 0–1.
    pub velocity: f32,
    /// Sample of the note-on.
    pub start: usize,
    /// Sample of the note-off.
    pub end: usize,
}

/// The notes of `song` (every non-drum track) at `rate` Hz, in time order.
///
/// # Errors
/// The song has no melodic notes (the message names the file).
pub fn notes_from_song(
    song: &Song,
    rate: u32,
) -> Result<Vec<ScheduledNote>, crate::midi::MidiError> {
    let at = |beat: f64| (song.tempo_map.seconds_at(beat) * f64::from(rate)).round() as usize;
    Ok(song
        .melodic_notes(None)?
        .iter()
        .map(|n: &Note| ScheduledNote {
            note: n.pitch,
            velocity: n.velocity_unit(),
            start: at(n.start_beat),
            end: at(n.end_beat),
        })
        .collect())
}

/// Renders `notes` through `engine` offline (waiting for the worker, as a host's bounce does)
/// in blocks of `block` samples: `frames` samples for each of `channels`, latency-compensated
/// (output sample `n` is what sounds for stream sample `n`).
pub fn render_notes(
    engine: &mut InstrumentEngine,
    notes: &[ScheduledNote],
    frames: usize,
    block: usize,
    channels: usize,
) -> Vec<Vec<f32>> {
    let mut events: Vec<(usize, NoteAction)> = notes
        .iter()
        .flat_map(|n| {
            [
                (
                    n.start,
                    NoteAction::On {
                        note: n.note,
                        velocity: n.velocity,
                    },
                ),
                (n.end.max(n.start + 1), NoteAction::Off { note: n.note }),
            ]
        })
        .collect();
    // At one sample, note-offs first: a repeated note ends before it starts again.
    events.sort_by_key(|(at, action)| (*at, matches!(action, NoteAction::On { .. })));
    let latency = engine.latency_samples();
    let total = frames + latency;
    let mut output = vec![vec![0.0f32; total]; channels.max(1)];
    let block = block.max(1);
    let mut next_event = 0;
    let mut offset = 0;
    while offset < total {
        let len = block.min(total - offset);
        while let Some(&(at, action)) = events.get(next_event) {
            if at >= offset + len {
                break;
            }
            engine.send(at.saturating_sub(offset), action);
            next_event += 1;
        }
        let mut slices: Vec<&mut [f32]> = output
            .iter_mut()
            .map(|c| &mut c[offset..offset + len])
            .collect();
        engine.process(&mut slices, Timing::Offline, || MixGain::WET);
        offset += len;
    }
    for channel in &mut output {
        channel.drain(..latency);
    }
    output
}
