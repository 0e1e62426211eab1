//! Continuo Phrase: a note effect that records what is played on its track, in host beats, and
//! passes the notes through (generation arrives with the continuation model).

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nice_plug::prelude::*;

use crate::engine::worker::WorkerHandle;
use crate::phrase::capture::{self, PhraseCapture, PhraseCommand, PhraseShared, TransportInfo};

/// Beats per bar assumed when turning the history length into beats (4/4).
const BEATS_PER_BAR: f64 = 4.0;

/// Parameters. IDs are stable: never rename them.
#[derive(Params)]
pub struct PhraseParams {
    /// Pass incoming notes to the output.
    #[id = "thru"]
    pub thru: BoolParam,
    /// How many bars of playing the history keeps.
    #[id = "history"]
    pub history_bars: IntParam,
}

impl Default for PhraseParams {
    fn default() -> Self {
        Self {
            thru: BoolParam::new("Thru", true),
            history_bars: IntParam::new("History", 8, IntRange::Linear { min: 1, max: 64 })
                .with_unit(" bars"),
        }
    }
}

struct Running {
    capture: PhraseCapture,
    shared: Arc<PhraseShared>,
    _worker: WorkerHandle<PhraseCommand>,
}

/// The Continuo Phrase plugin.
#[derive(Default)]
pub struct ContinuoPhrase {
    params: Arc<PhraseParams>,
    /// Present between `activate` and `deactivate`.
    running: Option<Running>,
}

impl Plugin for ContinuoPhrase {
    const NAME: &'static str = "Continuo Phrase";
    const VENDOR: &'static str = super::VENDOR;
    const URL: &'static str = super::URL;
    const EMAIL: &'static str = super::EMAIL;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    // A silent stereo output first: VST3 hosts (and several CLAP hosts) only run instruments that
    // have an audio output. Hosts that support pure note effects can pick the port-less layout.
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout::const_default(),
    ];
    const MIDI_INPUT: MidiConfig = MidiConfig::Basic;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;

    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.running = None;
        let history_beats = f64::from(self.params.history_bars.value()) * BEATS_PER_BAR;
        match capture::start(buffer_config.sample_rate, history_beats) {
            Ok((capture, worker, shared)) => {
                self.running = Some(Running {
                    capture,
                    shared,
                    _worker: worker,
                });
                true
            }
            Err(_) => false,
        }
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        for channel in buffer.as_slice() {
            channel.fill(0.0);
        }
        let thru = self.params.thru.value();
        let Some(running) = &mut self.running else {
            return ProcessStatus::Normal;
        };
        let history_beats = f64::from(self.params.history_bars.value()) * BEATS_PER_BAR;
        running
            .shared
            .history_beats
            .store(history_beats, Ordering::Relaxed);
        let transport = context.transport();
        let info = TransportInfo {
            playing: transport.playing,
            tempo_bpm: transport.tempo,
            pos_beats: transport.pos_beats(),
        };
        running.capture.begin_block(info, buffer.samples());
        while let Some(event) = context.next_event() {
            match event {
                NoteEvent::NoteOn {
                    timing,
                    channel,
                    key,
                    velocity,
                    ..
                } => {
                    if let (Some(channel), Some(pitch)) = (channel.number(), key.number()) {
                        running
                            .capture
                            .capture(timing, true, channel, pitch, velocity);
                    }
                }
                NoteEvent::NoteOff {
                    timing,
                    channel,
                    key,
                    velocity,
                    ..
                } => {
                    if let (Some(channel), Some(pitch)) = (channel.number(), key.number()) {
                        running
                            .capture
                            .capture(timing, false, channel, pitch, velocity);
                    }
                }
                _ => {}
            }
            if thru && context.try_send_event(event).is_err() {
                running
                    .shared
                    .events_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        ProcessStatus::Normal
    }

    fn deactivate(&mut self) {
        self.running = None;
    }
}

impl ClapPlugin for ContinuoPhrase {
    const CLAP_ID: &'static str = "org.continuo.phrase";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Continues the phrases played on its track");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[ClapFeature::NoteEffect, ClapFeature::Utility];
}

impl Vst3Plugin for ContinuoPhrase {
    const VST3_CLASS_ID: [u8; 16] = *b"ContinuoPhrase1!";
    // Hosts only send MIDI to VST3 plugins that declare themselves instruments.
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Tools];
}
