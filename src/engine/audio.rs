//! The audio engine of Continuo Style: the audio thread's half ([`AudioEngine`]) and the
//! worker's half ([`AudioWorker`]) joined by two timestamped streams.
//!
//! ```text
//! process(): input ─► sanitise ─► stream ─────────► worker: hops ─► HopProcessor ─► stream ─┐
//!            output ◄─ mix(crossfade(wet, dry)) ◄─ read wet frame n − slack ◄────────────────┘
//!                                    ▲
//!            input ─► dry delay line ┘   (delay = reported latency)
//! ```
//! The audio thread never waits in real-time mode: when the wet frame it needs is not there it
//! fades to the dry signal and counts the miss. To fade *out* gracefully it needs wet samples to
//! fade over, so the slack keeps a reserve of `fade` samples in the ring; when the reserve runs
//! low the fade starts while wet audio is still there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atomic_float::AtomicF32;

use super::crossfade::Crossfade;
use super::delay::DelayLine;
use super::stream::{stream, FrameRead, StreamReader, StreamWriter, MAX_CHANNELS};
use super::worker::{OfflineWait, Worker, WorkerHandle, IDLE_POLL};

/// How long a miss crossfade takes.
pub const FADE_MS: f32 = 2.0;
/// How long a hot-swap crossfade (old processor → new) takes.
pub const SWAP_FADE_MS: f32 = 30.0;
/// Offline mode waits this long for the worker before giving up on a block (and counting a miss).
/// After one such timeout the engine stops waiting (see [`EngineStats::offline_stalls`]) until the
/// worker has caught up again, so a dead worker costs a bounce this long once, not per block.
pub const OFFLINE_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Hop-based processing run on the worker thread (analysis → model → synthesis).
pub trait HopProcessor: Send + 'static {
    /// Samples per hop.
    fn hop_size(&self) -> usize;
    /// Delay the processor adds: an identity processor's output sample `m` is input `m − latency`.
    fn latency_samples(&self) -> usize;
    /// Called before each hop with the stream index of its first sample (processors that read
    /// timestamped events beside the audio need it; the rest ignore it).
    fn begin_hop(&mut self, _stream_index: u64) {}
    /// Turns one hop of input (one `Vec` per channel) into one hop of output.
    fn process_hop(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]);
    /// Forgets all history (called at stream discontinuities).
    fn reset(&mut self);
}

/// What the engine is set up for; fixed between activations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Host sample rate in Hz.
    pub sample_rate: f32,
    /// 1 (mono) or 2 (stereo).
    pub channels: usize,
    /// Largest block the host will pass to `process`.
    pub max_block_size: usize,
}

/// Where the reported latency comes from, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// What the hop processor adds (analysis window minus hop for an STFT).
    pub processor: usize,
    /// A block's input reaches the worker only after its callback returns.
    pub block: usize,
    /// A hop must be complete before the worker can process it.
    pub hop: usize,
    /// Reserve of wet samples kept to fade out over when the worker is late.
    pub fade: usize,
    /// An idle worker looks for work this often.
    pub idle_poll: usize,
}

impl Latency {
    /// The latency an engine with `config` running a processor of this hop and latency reports.
    pub fn new(config: &EngineConfig, hop: usize, processor: usize) -> Self {
        Self {
            processor,
            block: config.max_block_size,
            hop,
            fade: (FADE_MS * config.sample_rate / 1000.0).round() as usize,
            idle_poll: (IDLE_POLL.as_secs_f32() * config.sample_rate).ceil() as usize,
        }
    }

    /// Latency reported to the host: the dry path is delayed by the same amount.
    pub fn total(&self) -> usize {
        self.processor + self.worker_slack()
    }

    /// How far behind the input the audio thread reads the worker's output stream.
    pub fn worker_slack(&self) -> usize {
        self.block + self.hop + self.fade + self.idle_poll
    }
}

/// Counters the audio thread and worker publish (read by the GUI, CLI and tests).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Blocks in which at least one wet frame was missing (worker late).
    pub late_blocks: AtomicU64,
    /// Wet frames that were missing.
    pub missed_frames: AtomicU64,
    /// Input blocks dropped because the worker's input ring was full.
    pub input_overflows: AtomicU64,
    /// Output hops the worker dropped because the audio thread was not reading.
    pub output_overflows: AtomicU64,
    /// NaN/Inf input samples replaced by silence.
    pub non_finite_inputs: AtomicU64,
    /// Hops the worker has processed.
    pub hops_processed: AtomicU64,
    /// Hot swaps completed (the new processor is the only one running).
    pub swaps_completed: AtomicU64,
    /// Hot swaps refused because the new processor's hop size or latency differed.
    pub swaps_rejected: AtomicU64,
    /// Stream index up to which the worker has consumed input (offline mode waits on it).
    pub worker_progress: AtomicU64,
    /// Offline waits that timed out: each one switched the engine to real-time behaviour (no
    /// waiting, late hops dry and counted as misses) until the worker caught up again.
    pub offline_stalls: AtomicU64,
    /// Time the last hop took divided by the hop's duration (1.0 = just real time).
    pub worker_load: AtomicF32,
}

/// Whether `process` may wait for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Live playback: never wait; late wet audio is replaced by dry.
    Realtime,
    /// Offline render or bounce: wait for the worker so every hop is wet.
    Offline,
}

/// Per-sample mix settings, supplied by the caller (usually from smoothed parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixGain {
    /// 0 = dry only, 1 = wet only (linear; dry and wet are phase-aligned).
    pub mix: f32,
    /// Linear output gain.
    pub gain: f32,
    /// 0 = processed (mix, then gain); 1 = exactly the latency-compensated dry signal, gain
    /// and all bypassed; in between a linear crossfade, so switching bypass never clicks.
    pub bypass: f32,
}

impl MixGain {
    /// Wet only, unity gain, not bypassed.
    pub const WET: Self = Self {
        mix: 1.0,
        gain: 1.0,
        bypass: 0.0,
    };

    /// One output sample from the phase-aligned `processed` (wet after the miss crossfade)
    /// and `dry` samples.
    fn apply(&self, processed: f32, dry: f32) -> f32 {
        let out = if self.bypass >= 1.0 {
            dry
        } else {
            let out = self.gain * (self.mix * processed + (1.0 - self.mix) * dry);
            out + self.bypass.max(0.0) * (dry - out)
        };
        flush_subnormal(out)
    }
}

/// `x`, or 0 if it is subnormal. No subnormal may leave a plugin (clap-validator's fuzzer feeds
/// them in and checks): the worker runs without flush-to-zero, and exact operations (1.0 × x,
/// a copy) keep a subnormal even with it.
pub fn flush_subnormal(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0
    } else {
        x
    }
}

/// Starts an engine: the audio-thread half and the worker thread running `processor`.
///
/// # Errors
/// When the worker thread cannot be created.
pub fn start<P: HopProcessor>(
    config: EngineConfig,
    processor: P,
) -> std::io::Result<(AudioEngine, WorkerHandle<AudioCommand<P>>)> {
    let channels = config.channels.clamp(1, MAX_CHANNELS);
    let samples_per_ms = config.sample_rate / 1000.0;
    let hop = processor.hop_size();
    let latency = Latency::new(&config, hop, processor.latency_samples());
    // Room for a second of audio (or several blocks), so a stall of that long loses nothing.
    let capacity = (config.sample_rate as usize).max(4 * (config.max_block_size + hop));
    let (to_worker, worker_input) = stream(channels, capacity);
    let (worker_output, from_worker) = stream(channels, capacity);
    let stats = Arc::new(EngineStats::default());
    let worker = AudioWorker {
        input: worker_input,
        output: worker_output,
        hops: HopAssembler::new(
            processor,
            channels,
            (SWAP_FADE_MS * samples_per_ms).round() as usize,
        ),
        stats: stats.clone(),
        hop_duration: Duration::from_secs_f32(hop as f32 / config.sample_rate),
    };
    let handle = WorkerHandle::spawn("continuo-style-worker", worker)?;
    let engine = AudioEngine {
        channels,
        max_block_size: config.max_block_size.max(1),
        to_worker,
        from_worker,
        dry_delay: DelayLine::new(channels, latency.total()),
        fade: Crossfade::new(latency.fade),
        latency,
        next_index: 0,
        stream_start: 0,
        offline_wait: OfflineWait::new(handle.unparker(), OFFLINE_WAIT_LIMIT),
        stats,
    };
    Ok((engine, handle))
}

/// Control messages for the audio worker.
pub enum AudioCommand<P> {
    /// Forget the processor's history.
    Reset,
    /// Hot swap: bring in a new processor (e.g. a newly loaded model). It is fed the live input
    /// until its history is full, then crossfaded in over [`SWAP_FADE_MS`]; the old one is
    /// dropped on the worker. Refused (and counted in [`EngineStats::swaps_rejected`]) if its
    /// hop size or latency differs, because the latency reported to the host cannot change.
    Replace(P),
}

/// The audio thread's half of the engine. All methods are real-time safe in
/// [`Timing::Realtime`]: no allocation, lock, syscall or unbounded wait.
pub struct AudioEngine {
    channels: usize,
    max_block_size: usize,
    to_worker: StreamWriter,
    from_worker: StreamReader,
    dry_delay: DelayLine,
    fade: Crossfade,
    latency: Latency,
    /// Stream index of the next input frame.
    next_index: u64,
    /// Index where the current stream began (0, or where `reset` restarted it): no wet audio
    /// is due before `stream_start + worker_slack`.
    stream_start: u64,
    /// Only used in offline mode: waits for the worker (and wakes it instead of waiting for
    /// its poll).
    offline_wait: OfflineWait,
    stats: Arc<EngineStats>,
}

impl AudioEngine {
    /// Latency to report to the host, in samples.
    pub fn latency_samples(&self) -> usize {
        self.latency.total()
    }

    /// The parts the latency is made of.
    pub fn latency(&self) -> Latency {
        self.latency
    }

    /// Stream index of the next input frame: events for the worker are stamped with it (plus
    /// their offset in the block), the same clock its hops see in
    /// [`HopProcessor::begin_hop`].
    pub fn stream_position(&self) -> u64 {
        self.next_index
    }

    /// Shared counters.
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.stats
    }

    /// Channels the engine processes (extra host channels pass through untouched).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Changes how long an offline block waits for the worker ([`OFFLINE_WAIT_LIMIT`] by
    /// default), e.g. for a caller with its own deadline.
    pub fn set_offline_wait_limit(&mut self, limit: Duration) {
        self.offline_wait.set_limit(limit);
    }

    /// Clears the dry path and restarts the stream timeline; the worker notices the jump and
    /// resets itself. Real-time safe.
    pub fn reset(&mut self) {
        self.dry_delay.reset();
        // Jump past anything still in flight so no stale wet audio is played.
        self.next_index += (self.latency.total() + self.max_block_size) as u64;
        self.stream_start = self.next_index;
        self.fade.set(true);
    }

    /// Processes one host block in place (`channels[c][frame]`), any length. A block with
    /// fewer channels than the engine was started with is processed on the channels it has (the
    /// worker gets the last one repeated); extra channels are left untouched.
    pub fn process(
        &mut self,
        channels: &mut [&mut [f32]],
        timing: Timing,
        mut mix_gain: impl FnMut() -> MixGain,
    ) {
        let channel_count = self.channels.min(channels.len());
        if channel_count == 0 {
            return;
        }
        let frames = channels[..channel_count]
            .iter()
            .map(|channel| channel.len())
            .min()
            .unwrap_or(0);
        let mut offset = 0;
        while offset < frames {
            let len = (frames - offset).min(self.max_block_size);
            self.process_sub_block(
                &mut channels[..channel_count],
                offset,
                len,
                timing,
                &mut mix_gain,
            );
            offset += len;
        }
    }

    fn process_sub_block(
        &mut self,
        channels: &mut [&mut [f32]],
        offset: usize,
        len: usize,
        timing: Timing,
        mix_gain: &mut impl FnMut() -> MixGain,
    ) {
        let mut non_finite = 0;
        for channel in channels.iter_mut() {
            for sample in &mut channel[offset..offset + len] {
                if !sample.is_finite() {
                    *sample = 0.0;
                    non_finite += 1;
                }
            }
        }
        if non_finite > 0 {
            self.stats
                .non_finite_inputs
                .fetch_add(non_finite, Ordering::Relaxed);
        }

        // `process` passes at least one channel; a missing one reads the last one present.
        let present = channels.len();
        let source = |channel: usize| channel.min(present - 1);
        let start = self.next_index;
        let sent = {
            let input = &*channels;
            self.to_worker.write(start, len, |channel, frame| {
                input[source(channel)][offset + frame]
            })
        };
        if !sent {
            self.stats.input_overflows.fetch_add(1, Ordering::Relaxed);
        } else if timing == Timing::Offline {
            self.wait_for_worker(start + len as u64);
        }

        let slack = self.latency.worker_slack() as u64;
        let first_wet_index = self.stream_start + slack;
        let reserve = self.latency.fade;
        let mut missed = 0u64;
        let mut wet = [0.0f32; MAX_CHANNELS];
        let mut dry = [0.0f32; MAX_CHANNELS];
        for frame in 0..len {
            let index = start + frame as u64;
            for (channel, value) in dry.iter_mut().enumerate().take(self.channels) {
                *value = channels[source(channel)][offset + frame];
            }
            self.dry_delay.process_frame(&mut dry[..self.channels]);

            // Before the stream has run for `slack` samples there is no wet audio to expect
            // (the wet output of a fresh stream starts silent, like the delayed dry path).
            let towards_wet = if index < first_wet_index {
                wet = [0.0; MAX_CHANNELS];
                true
            } else {
                let wet_frame = &mut wet[..self.channels];
                match self.from_worker.read_frame_at(index - slack, wet_frame) {
                    FrameRead::Ready => self.from_worker.frames_buffered() >= reserve,
                    FrameRead::Missing => {
                        wet = [0.0; MAX_CHANNELS];
                        missed += 1;
                        false
                    }
                }
            };
            let fade = self.fade.next(towards_wet);
            let mix_gain = mix_gain();
            for (channel, samples) in channels.iter_mut().enumerate() {
                let processed = fade.wet * wet[channel] + fade.dry * dry[channel];
                samples[offset + frame] = mix_gain.apply(processed, dry[channel]);
            }
        }
        if missed > 0 {
            self.stats.late_blocks.fetch_add(1, Ordering::Relaxed);
            self.stats
                .missed_frames
                .fetch_add(missed, Ordering::Relaxed);
        }
        self.next_index += len as u64;
    }

    /// Offline only: waits until the worker has consumed the input up to `end` (see
    /// [`OfflineWait`]: a stuck worker is waited for once); meanwhile the blocks play as in
    /// real time (dry where wet is late, counted as misses).
    fn wait_for_worker(&mut self, end: u64) {
        if !self.offline_wait.until(&self.stats.worker_progress, end) {
            self.stats.offline_stalls.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The worker's half: reads input chunks, assembles hops, runs the processor, writes hops out.
pub struct AudioWorker<P: HopProcessor> {
    input: StreamReader,
    output: StreamWriter,
    hops: HopAssembler<P>,
    stats: Arc<EngineStats>,
    hop_duration: Duration,
}

impl<P: HopProcessor> Worker for AudioWorker<P> {
    type Command = AudioCommand<P>;

    fn handle(&mut self, command: AudioCommand<P>) {
        match command {
            AudioCommand::Reset => self.hops.restart(self.hops.expected),
            AudioCommand::Replace(processor) => {
                if !self.hops.bring_in(processor) {
                    self.stats.swaps_rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn poll(&mut self) -> bool {
        let Self {
            input,
            output,
            hops,
            stats,
            hop_duration,
        } = self;
        let mut worked = false;
        while input.read_chunk(|start, first, second| {
            if start != hops.expected {
                hops.restart(start);
            }
            for frame in first
                .chunks_exact(hops.channels)
                .chain(second.chunks_exact(hops.channels))
            {
                hops.push_frame(frame, output, stats, *hop_duration);
            }
            stats
                .worker_progress
                .store(hops.expected, Ordering::Release);
        }) {
            worked = true;
        }
        worked
    }
}

/// A processor being hot-swapped in.
struct Incoming<P> {
    processor: P,
    /// Hops still to feed it (output unused) before its history is full.
    warm_hops_left: usize,
    /// Samples of the crossfade done so far.
    faded: usize,
}

/// Collects input frames into hops and writes each processed hop to the output stream.
struct HopAssembler<P: HopProcessor> {
    processor: P,
    /// Replacement being warmed up and crossfaded in, if any.
    incoming: Option<Incoming<P>>,
    /// Length of a hot-swap crossfade in samples.
    swap_fade: usize,
    channels: usize,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
    incoming_output: Vec<Vec<f32>>,
    /// Frames in the hop being filled.
    filled: usize,
    /// Stream index of the hop being filled (its output gets the same index).
    hop_start: u64,
    /// Stream index of the next input frame expected; anything else is a discontinuity.
    expected: u64,
}

impl<P: HopProcessor> HopAssembler<P> {
    fn new(processor: P, channels: usize, swap_fade: usize) -> Self {
        let hop = processor.hop_size();
        Self {
            processor,
            incoming: None,
            swap_fade: swap_fade.max(1),
            channels,
            input: vec![vec![0.0; hop]; channels],
            output: vec![vec![0.0; hop]; channels],
            incoming_output: vec![vec![0.0; hop]; channels],
            filled: 0,
            hop_start: 0,
            expected: 0,
        }
    }

    /// Starts a hot swap to `processor`; `false` if it cannot replace the current one.
    fn bring_in(&mut self, mut processor: P) -> bool {
        let hop = self.processor.hop_size();
        if processor.hop_size() != hop
            || processor.latency_samples() != self.processor.latency_samples()
        {
            return false;
        }
        processor.reset();
        // Enough hops for its analysis window to hold only live input.
        let warm_hops_left = processor.latency_samples().div_ceil(hop) + 1;
        self.incoming = Some(Incoming {
            processor,
            warm_hops_left,
            faded: 0,
        });
        true
    }

    fn restart(&mut self, start: u64) {
        // After a discontinuity both would start from silence: no need to fade.
        if let Some(incoming) = self.incoming.take() {
            self.processor = incoming.processor;
        }
        self.processor.reset();
        self.filled = 0;
        self.hop_start = start;
        self.expected = start;
    }

    fn push_frame(
        &mut self,
        frame: &[f32],
        output: &mut StreamWriter,
        stats: &EngineStats,
        hop_duration: Duration,
    ) {
        for (channel, sample) in frame.iter().enumerate() {
            self.input[channel][self.filled] = *sample;
        }
        self.filled += 1;
        self.expected += 1;
        let hop = self.input[0].len();
        if self.filled < hop {
            return;
        }
        let started = Instant::now();
        self.processor.begin_hop(self.hop_start);
        self.processor.process_hop(&self.input, &mut self.output);
        if self.swap_step() {
            stats.swaps_completed.fetch_add(1, Ordering::Relaxed);
        }
        stats.worker_load.store(
            started.elapsed().as_secs_f32() / hop_duration.as_secs_f32(),
            Ordering::Relaxed,
        );
        stats.hops_processed.fetch_add(1, Ordering::Relaxed);
        let hop_output = &self.output;
        if !output.write(self.hop_start, hop, |channel, frame| {
            hop_output[channel][frame]
        }) {
            stats.output_overflows.fetch_add(1, Ordering::Relaxed);
        }
        self.hop_start += hop as u64;
        self.filled = 0;
    }

    /// Runs the incoming processor on the current hop and mixes it into `output` along an
    /// equal-power curve; returns `true` when the swap has just completed.
    fn swap_step(&mut self) -> bool {
        let Some(incoming) = &mut self.incoming else {
            return false;
        };
        incoming.processor.begin_hop(self.hop_start);
        incoming
            .processor
            .process_hop(&self.input, &mut self.incoming_output);
        if incoming.warm_hops_left > 0 {
            incoming.warm_hops_left -= 1;
            return false;
        }
        let hop = self.input[0].len();
        for (old, new) in self.output.iter_mut().zip(&self.incoming_output) {
            for (index, (old, new)) in old.iter_mut().zip(new).enumerate() {
                let progress =
                    ((incoming.faded + index + 1) as f32 / self.swap_fade as f32).min(1.0);
                let angle = progress * std::f32::consts::FRAC_PI_2;
                *old = angle.cos() * *old + angle.sin() * new;
            }
        }
        incoming.faded += hop;
        if incoming.faded < self.swap_fade {
            return false;
        }
        if let Some(incoming) = self.incoming.take() {
            // The old processor is dropped here, on the worker thread.
            self.processor = incoming.processor;
        }
        true
    }
}
