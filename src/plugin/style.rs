//! Continuo Style: restyles live audio with a neural timbre model, latency-compensated and
//! crossfaded with the dry signal.
//!
//! Threads: the audio thread (`process`) copies audio to and from the engine and publishes the
//! style settings as atomics; the engine's worker runs [`StyleProcessor`]; a loader thread
//! watches the Style A/B parameters and, when they change, loads the models off both real-time
//! paths and hot-swaps a new processor in (crossfaded by the engine).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use nice_plug::prelude::*;

use crate::engine::audio::{
    self, AudioCommand, AudioEngine, EngineConfig, Latency, MixGain, Timing,
};
use crate::engine::worker::WorkerHandle;
use crate::model::{BackendChoice, ModelDirs};
use crate::plugin::model_choice::{ModelChoice, SavedModelName};
use crate::style::voice::GATE_OFF_DB;
use crate::style::{
    available_styles, load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor,
    StyleSettings, StyleStatus,
};

/// Latency mode as a parameter.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeParam {
    /// Shorter analysis, less latency.
    #[id = "low"]
    #[name = "Low latency"]
    LowLatency,
    /// The analysis the model was trained with.
    #[id = "quality"]
    #[name = "Quality"]
    Quality,
}

impl From<ModeParam> for LatencyMode {
    fn from(mode: ModeParam) -> Self {
        match mode {
            ModeParam::LowLatency => LatencyMode::LowLatency,
            ModeParam::Quality => LatencyMode::Quality,
        }
    }
}

/// Parameters. IDs are stable: never rename them (saved sessions refer to them).
#[derive(Params)]
pub struct StyleParams {
    /// Style A: index into the timbre models found when the plugin was created.
    #[id = "style"]
    pub style: IntParam,
    /// Style B to morph towards: 0 = none, `i` = model `i − 1`.
    #[id = "style_b"]
    pub style_b: IntParam,
    /// Morph A → B.
    #[id = "morph"]
    pub morph: FloatParam,
    /// Pitch shift, semitones.
    #[id = "pitch"]
    pub pitch_shift: FloatParam,
    /// Octave shift.
    #[id = "octave"]
    pub octave: IntParam,
    /// Gain before analysis.
    #[id = "in_gain"]
    pub input_gain: FloatParam,
    /// Gate threshold (fully left = off).
    #[id = "gate"]
    pub gate: FloatParam,
    /// Harmonic/noise balance.
    #[id = "balance"]
    pub balance: FloatParam,
    /// Brightness (harmonic tilt).
    #[id = "bright"]
    pub brightness: FloatParam,
    /// Latency mode. Changing it announces the other mode's latency, which makes the host
    /// restart the plugin in that mode.
    #[id = "mode"]
    pub mode: EnumParam<ModeParam>,
    /// Dry/wet balance, linear (dry and wet are phase-aligned).
    #[id = "mix"]
    pub mix: FloatParam,
    /// Gain after the mix.
    #[id = "out_gain"]
    pub output_gain: FloatParam,
    /// Host bypass: crossfades to the latency-compensated dry signal, so latency never changes.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Style A by name, for sessions.
    #[persist = "style-name"]
    pub style_name: SavedModelName,
    /// Style B by name ("" = off), for sessions.
    #[persist = "style-b-name"]
    pub style_b_name: SavedModelName,
}

/// The timbre models the Style parameters choose from: the standard model directories, scanned
/// once per process (every instance must agree on what an index means).
fn style_models() -> &'static [String] {
    static STYLES: OnceLock<Vec<String>> = OnceLock::new();
    STYLES.get_or_init(|| available_styles(&ModelDirs::standard(&[])))
}

/// Style A: values pick models from 0.
fn style_a() -> ModelChoice {
    ModelChoice::new(style_models(), 0)
}

/// Style B: 0 is Off, values from 1 pick models.
fn style_b() -> ModelChoice {
    ModelChoice::new(style_models(), 1)
}

impl Default for StyleParams {
    fn default() -> Self {
        let style_name = SavedModelName::new(style_a());
        let style_b_name = SavedModelName::new(style_b());
        let percent = || {
            (
                formatters::v2s_f32_percentage(0),
                formatters::s2v_f32_percentage(),
            )
        };
        let (mix_v2s, mix_s2v) = percent();
        let (morph_v2s, morph_s2v) = percent();
        Self {
            style: style_a().param("Style", 0, &style_name),
            style_b: style_b().param("Style B", 0, &style_b_name),
            style_name,
            style_b_name,
            morph: FloatParam::new(
                "Style Morph",
                0.0,
                FloatRange::Linear { min: 0.0, max: 1.0 },
            )
            .with_unit("%")
            .with_value_to_string(morph_v2s)
            .with_string_to_value(morph_s2v),
            pitch_shift: FloatParam::new(
                "Pitch Shift",
                0.0,
                FloatRange::Linear {
                    min: -24.0,
                    max: 24.0,
                },
            )
            .with_step_size(0.01)
            .with_unit(" st"),
            octave: IntParam::new("Octave", 0, IntRange::Linear { min: -2, max: 2 }),
            input_gain: FloatParam::new(
                "Input Gain",
                0.0,
                FloatRange::Linear {
                    min: -24.0,
                    max: 24.0,
                },
            )
            .with_step_size(0.1)
            .with_unit(" dB"),
            gate: FloatParam::new(
                "Gate",
                -60.0,
                FloatRange::Linear {
                    min: GATE_OFF_DB,
                    max: -10.0,
                },
            )
            .with_step_size(0.5)
            .with_value_to_string(Arc::new(|db| {
                if db <= GATE_OFF_DB {
                    "Off".into()
                } else {
                    format!("{db:.1} dB")
                }
            })),
            balance: FloatParam::new(
                "Harmonic/Noise",
                0.0,
                FloatRange::Linear {
                    min: -1.0,
                    max: 1.0,
                },
            )
            .with_step_size(0.01),
            brightness: FloatParam::new(
                "Brightness",
                0.0,
                FloatRange::Linear {
                    min: -1.0,
                    max: 1.0,
                },
            )
            .with_step_size(0.01),
            mode: EnumParam::new("Latency Mode", ModeParam::Quality).non_automatable(),
            mix: FloatParam::new("Mix", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(20.0))
                .with_unit("%")
                .with_value_to_string(mix_v2s)
                .with_string_to_value(mix_s2v),
            output_gain: FloatParam::new(
                "Output Gain",
                util::db_to_gain(0.0),
                FloatRange::Skewed {
                    min: util::db_to_gain(-30.0),
                    max: util::db_to_gain(12.0),
                    factor: FloatRange::gain_skew_factor(-30.0, 12.0),
                },
            )
            .with_smoother(SmoothingStyle::Logarithmic(20.0))
            .with_unit(" dB")
            .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
            .with_string_to_value(formatters::s2v_f32_gain_to_db()),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
        }
    }
}

impl StyleParams {
    /// The style settings as the worker reads them (unsmoothed: the voice smooths per frame).
    fn style_settings(&self) -> StyleSettings {
        StyleSettings {
            pitch_shift_st: self.pitch_shift.value(),
            octave: self.octave.value() as f32,
            input_gain_db: self.input_gain.value(),
            gate_db: self.gate.value(),
            balance: self.balance.value(),
            brightness: self.brightness.value(),
            morph: self.morph.value(),
        }
    }

    /// Styles A and B as chosen by the parameters; `None` when no model exists.
    fn choice(&self) -> Option<StyleChoice> {
        let a = style_a().name(self.style.value())?;
        let b = style_b().name(self.style_b.value()).filter(|b| *b != a);
        Some(StyleChoice {
            a: a.to_owned(),
            b: b.map(str::to_owned),
        })
    }
}

/// Everything a processor is built from, besides the models.
#[derive(Clone)]
struct BuildContext {
    sample_rate: f32,
    channels: usize,
    mode: LatencyMode,
    dirs: ModelDirs,
    settings: Arc<SharedStyleSettings>,
    status: Arc<StyleStatus>,
}

impl BuildContext {
    /// A processor playing `choice`, or the dry processor (same latency) with the reason logged
    /// when it cannot be loaded.
    fn build(&self, choice: Option<&StyleChoice>) -> Option<StyleProcessor> {
        let voice = match choice {
            None => {
                self.report("no timbre model found: passing audio through dry".into());
                None
            }
            Some(choice) => match load_voice(
                choice,
                &self.dirs,
                BackendChoice::Auto,
                self.mode,
                self.settings.clone(),
                self.status.clone(),
            ) {
                Ok(voice) => {
                    self.report(format!("playing {}", describe(choice)));
                    Some(voice)
                }
                Err(e) => {
                    self.status.load_errors.fetch_add(1, Ordering::Relaxed);
                    self.report(format!("cannot load {}: {e}", describe(choice)));
                    None
                }
            },
        };
        match StyleProcessor::new(self.sample_rate, self.channels, self.mode, voice) {
            Ok(p) => Some(p),
            Err(e) => {
                self.report(format!("cannot run at {} Hz: {e}", self.sample_rate));
                None
            }
        }
    }

    fn report(&self, message: String) {
        nice_log!("Continuo Style: {message}");
        self.status.set(message);
    }
}

fn describe(choice: &StyleChoice) -> String {
    match &choice.b {
        Some(b) => format!("{} ↔ {b}", choice.a),
        None => choice.a.clone(),
    }
}

/// Watches Style A/B and hot-swaps a newly loaded processor in. Dropping it stops the thread.
struct StyleLoader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the loader looks at the style parameters; a new choice must also hold this long
/// before it is loaded, so sweeping through styles does not load every one on the way.
const LOADER_POLL: Duration = Duration::from_millis(100);

impl StyleLoader {
    fn spawn(
        params: Arc<StyleParams>,
        build: BuildContext,
        loaded: Option<StyleChoice>,
        commands: Sender<AudioCommand<StyleProcessor>>,
    ) -> Option<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let run = move || {
            let mut loaded = loaded;
            let mut pending: Option<Option<StyleChoice>> = None;
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(LOADER_POLL);
                let wanted = params.choice();
                if wanted == loaded {
                    pending = None;
                    continue;
                }
                if pending.as_ref() != Some(&wanted) {
                    pending = Some(wanted);
                    continue;
                }
                if let Some(processor) = build.build(wanted.as_ref()) {
                    if commands.send(AudioCommand::Replace(processor)).is_err() {
                        return;
                    }
                }
                loaded = wanted;
                pending = None;
            }
        };
        let thread = std::thread::Builder::new()
            .name("continuo-style-loader".into())
            .spawn(run)
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StyleLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The running engine. Field order is drop order: the loader (holding a command sender) stops
/// before the worker handle joins the worker.
struct Running {
    _loader: Option<StyleLoader>,
    engine: AudioEngine,
    _worker: WorkerHandle<AudioCommand<StyleProcessor>>,
    timing: Timing,
    /// The latency mode this engine runs.
    mode: ModeParam,
    /// What the latency will be in the other mode: announcing it makes the host restart the
    /// plugin, and `activate` then builds that mode.
    other_mode_latency: Option<u32>,
    mode_change_requested: bool,
}

/// The Continuo Style plugin.
pub struct ContinuoStyle {
    params: Arc<StyleParams>,
    settings: Arc<SharedStyleSettings>,
    status: Arc<StyleStatus>,
    /// Present between `activate` and `deactivate`.
    running: Option<Running>,
    /// 1 = processing, 0 = bypassed; smoothed so bypass never clicks.
    active: Smoother<f32>,
    sample_rate: f32,
}

impl Default for ContinuoStyle {
    fn default() -> Self {
        Self {
            params: Arc::new(StyleParams::default()),
            settings: Arc::new(SharedStyleSettings::default()),
            status: Arc::new(StyleStatus::default()),
            running: None,
            active: Smoother::new(SmoothingStyle::Linear(20.0)),
            sample_rate: 48_000.0,
        }
    }
}

impl Plugin for ContinuoStyle {
    const NAME: &'static str = "Continuo Style";
    const VENDOR: &'static str = super::VENDOR;
    const URL: &'static str = super::URL;
    const EMAIL: &'static str = super::EMAIL;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];

    type SysExMessage = ();
    type BackgroundTask = ();
    type Editor = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn filter_state(state: &mut PluginState) {
        style_a().restore(state, "style", "style-name", "Continuo Style");
        style_b().restore(state, "style_b", "style-b-name", "Continuo Style");
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        // Stop a previous worker (and loader) before starting the next.
        self.running = None;
        let channels = audio_io_layout
            .main_output_channels
            .map_or(2, NonZeroU32::get) as usize;
        let config = EngineConfig {
            sample_rate: buffer_config.sample_rate,
            channels,
            max_block_size: buffer_config.max_buffer_size as usize,
        };
        self.settings.store(&self.params.style_settings());
        let mode = self.params.mode.value();
        let other_mode = match mode {
            ModeParam::LowLatency => ModeParam::Quality,
            ModeParam::Quality => ModeParam::LowLatency,
        };
        let other_mode_latency =
            StyleProcessor::hop_and_latency(buffer_config.sample_rate, other_mode.into())
                .ok()
                .map(|(hop, processor)| Latency::new(&config, hop, processor).total() as u32);
        let build = BuildContext {
            sample_rate: buffer_config.sample_rate,
            channels,
            mode: mode.into(),
            dirs: ModelDirs::standard(&[]),
            settings: self.settings.clone(),
            status: self.status.clone(),
        };
        // Activation may block: the first models load here, so an offline bounce is wet from
        // its first sample.
        let choice = self.params.choice();
        let Some(processor) = build.build(choice.as_ref()) else {
            return false;
        };
        let Ok((engine, worker)) = audio::start(config, processor) else {
            return false;
        };
        context.set_latency_samples(engine.latency_samples() as u32);
        let timing = match buffer_config.process_mode {
            ProcessMode::Offline => Timing::Offline,
            ProcessMode::Realtime | ProcessMode::Buffered => Timing::Realtime,
        };
        let loader = worker
            .sender()
            .and_then(|commands| StyleLoader::spawn(self.params.clone(), build, choice, commands));
        self.sample_rate = buffer_config.sample_rate;
        log_model_runtime();
        self.running = Some(Running {
            _loader: loader,
            engine,
            _worker: worker,
            timing,
            mode,
            other_mode_latency,
            mode_change_requested: false,
        });
        true
    }

    fn reset(&mut self) {
        if let Some(running) = &mut self.running {
            running.engine.reset();
        }
        self.active
            .reset(if self.params.bypass.value() { 0.0 } else { 1.0 });
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(running) = &mut self.running else {
            // Not activated: leave the audio untouched.
            return ProcessStatus::Normal;
        };
        if self.params.mode.value() != running.mode && !running.mode_change_requested {
            if let Some(latency) = running.other_mode_latency {
                // A new latency makes the wrapper ask the host for a restart (lock-free task).
                context.set_latency_samples(latency);
                running.mode_change_requested = true;
            }
        }
        self.settings.store(&self.params.style_settings());
        let target = if self.params.bypass.value() { 0.0 } else { 1.0 };
        self.active.set_target(self.sample_rate, target);
        let params = &self.params;
        let active = &self.active;
        running
            .engine
            .process(buffer.as_slice(), running.timing, || MixGain {
                mix: params.mix.smoothed.next() * active.next(),
                gain: params.output_gain.smoothed.next(),
            });
        ProcessStatus::Normal
    }

    fn deactivate(&mut self) {
        self.running = None;
    }
}

/// Finds the model runtime (ONNX Runtime beside the plugin, else tract) on a short-lived
/// thread, so activation stays quick, and logs which one models run on.
fn log_model_runtime() {
    let probe = || {
        let backend = crate::model::describe_auto_backend(&crate::model::RuntimeSearch::default());
        nice_log!("Continuo Style: models run on {backend}");
    };
    if std::thread::Builder::new()
        .name("continuo-runtime-probe".into())
        .spawn(probe)
        .is_err()
    {
        nice_log!("Continuo Style: could not start the model runtime probe");
    }
}

impl ClapPlugin for ContinuoStyle {
    const CLAP_ID: &'static str = "org.continuo.style";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Restyles live audio with a neural timbre model");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Stereo,
        ClapFeature::Mono,
    ];
}

impl Vst3Plugin for ContinuoStyle {
    const VST3_CLASS_ID: [u8; 16] = *b"ContinuoStyle01!";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[Vst3SubCategory::Fx];
}
