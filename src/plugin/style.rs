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

use crossbeam_channel::Sender;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;

use crate::editor::style::{EngineSlot, RunningEngine, StyleEditor};
use crate::editor::{saved_size, SavedEditorSize, SizedEditor};
use crate::engine::audio::{self, AudioCommand, AudioEngine, EngineConfig, MixGain, Timing};
use crate::engine::worker::WorkerHandle;
use crate::model::{chain_message, BackendChoice, ModelDirs};
use crate::plugin::bypass::BypassFade;
use crate::plugin::loader::ChoiceLoader;
use crate::plugin::model_choice::{ModelChoice, ModelList, SavedModelName};
use crate::plugin::{host_timing, OfflineRender};
use crate::style::controls::{
    ParamSpec, BALANCE, BRIGHTNESS, GATE, INPUT_GAIN, MIX, MORPH, OCTAVE, OUTPUT_GAIN, PITCH_SHIFT,
};
use crate::style::features::F0_MIN_HZ;
use crate::style::monitor::peak;
use crate::style::voice::GATE_OFF_DB;
use crate::style::{
    available_styles, load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor,
    StyleSettings, StyleStatus, TimbreVoice,
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
    /// Bring the input's long-term level to the model's training level before the model hears
    /// it. Off in sessions saved before it existed, so they sound as they did.
    #[id = "auto_level"]
    pub auto_level: BoolParam,
    /// Gate threshold (fully left = off).
    #[id = "gate"]
    pub gate: FloatParam,
    /// Harmonic/noise balance.
    #[id = "balance"]
    pub balance: FloatParam,
    /// Brightness (harmonic tilt).
    #[id = "bright"]
    pub brightness: FloatParam,
    /// Latency mode. Changing it asks the host to restart the plugin, which then runs (and
    /// reports the latency of) that mode; until the host does, the old mode plays on.
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
    /// Offline rendering: as the host says, or always (waits for the worker).
    #[id = "offline"]
    pub offline: EnumParam<OfflineRender>,
    /// Style A by name, for sessions.
    #[persist = "style-name"]
    pub style_name: SavedModelName,
    /// Style B by name ("" = off), for sessions.
    #[persist = "style-b-name"]
    pub style_b_name: SavedModelName,
    /// The editor's size.
    #[persist = "editor-size"]
    pub editor_size: SavedEditorSize,
}

/// Places for timbre models installed after the host started (the editor's Refresh fills them).
const LATER_STYLE_SLOTS: usize = 8;

/// The timbre models the Style parameters choose from: the standard model directories, scanned
/// once per process (every instance must agree on what an index means), then
/// [`LATER_STYLE_SLOTS`] places for models installed later.
pub fn style_models() -> &'static ModelList {
    static STYLES: OnceLock<ModelList> = OnceLock::new();
    STYLES.get_or_init(|| {
        ModelList::scanned(
            || available_styles(&ModelDirs::standard(&[])),
            LATER_STYLE_SLOTS,
        )
    })
}

/// Style A: values pick models from 0.
pub(crate) fn style_a() -> ModelChoice {
    ModelChoice::new(style_models(), 0)
}

/// Style B: 0 is Off, values from 1 pick models.
pub(crate) fn style_b() -> ModelChoice {
    ModelChoice::new(style_models(), 1)
}

/// A linear float parameter over `spec`'s range, default, step and unit.
pub(super) fn float_param(name: &str, spec: ParamSpec) -> FloatParam {
    let param = FloatParam::new(
        name,
        spec.default,
        FloatRange::Linear {
            min: spec.min,
            max: spec.max,
        },
    )
    .with_unit(spec.unit);
    match spec.step {
        Some(step) => param
            .with_step_size(step)
            .with_value_to_string(Arc::new(move |value| stepped_to_string(value, step))),
        None => param,
    }
}

/// `value` with the decimals `step` needs, and never "-0.0": that would read back as 0.0 and
/// show as "0.0", and hosts expect a value's text to survive a round trip.
fn stepped_to_string(value: f32, step: f32) -> String {
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    // Adding +0.0 turns −0.0 into +0.0.
    let snapped = (value / step).round() * step + 0.0;
    format!("{snapped:.decimals$}")
}

/// A 0–1 float parameter over `spec`, shown and typed in whole percent.
pub(super) fn percent_param(name: &str, spec: ParamSpec) -> FloatParam {
    float_param(name, spec)
        .with_value_to_string(formatters::v2s_f32_percentage(0))
        .with_string_to_value(formatters::s2v_f32_percentage())
}

/// Output gain over [`OUTPUT_GAIN`] (linear, shown in dB, smoothed).
pub(super) fn output_gain_param() -> FloatParam {
    FloatParam::new(
        "Output Gain",
        util::db_to_gain(OUTPUT_GAIN.default),
        FloatRange::Skewed {
            min: util::db_to_gain(OUTPUT_GAIN.min),
            max: util::db_to_gain(OUTPUT_GAIN.max),
            factor: FloatRange::gain_skew_factor(OUTPUT_GAIN.min, OUTPUT_GAIN.max),
        },
    )
    .with_smoother(SmoothingStyle::Logarithmic(20.0))
    .with_unit(OUTPUT_GAIN.unit)
    .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
    .with_string_to_value(formatters::s2v_f32_gain_to_db())
}

/// The gate's text: "Off" at the bottom of its range, else dB with one decimal.
fn gate_to_string(db: f32) -> String {
    if db <= GATE_OFF_DB {
        "Off".into()
    } else {
        format!("{db:.1} dB")
    }
}

/// Reads what [`gate_to_string`] writes (and a bare number of dB).
fn gate_from_string(text: &str) -> Option<f32> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Some(GATE_OFF_DB);
    }
    let number = text
        .strip_suffix("dB")
        .or_else(|| text.strip_suffix("db"))
        .unwrap_or(text);
    number.trim().parse().ok()
}

impl Default for StyleParams {
    fn default() -> Self {
        let style_name = SavedModelName::new(style_a());
        let style_b_name = SavedModelName::new(style_b());
        Self {
            style: style_a().param("Style", 0, &style_name),
            style_b: style_b().param("Style B", 0, &style_b_name),
            style_name,
            style_b_name,
            editor_size: saved_size(760.0, 660.0),
            morph: percent_param("Style Morph", MORPH),
            pitch_shift: float_param("Pitch Shift", PITCH_SHIFT),
            octave: IntParam::new(
                "Octave",
                OCTAVE.default as i32,
                IntRange::Linear {
                    min: OCTAVE.min as i32,
                    max: OCTAVE.max as i32,
                },
            ),
            input_gain: float_param("Input Gain", INPUT_GAIN),
            auto_level: BoolParam::new("Auto Level", StyleSettings::default().auto_level),
            // The unit is in the text (Off has none).
            gate: float_param("Gate", GATE)
                .with_unit("")
                .with_value_to_string(Arc::new(gate_to_string))
                .with_string_to_value(Arc::new(gate_from_string)),
            balance: float_param("Harmonic/Noise", BALANCE),
            brightness: float_param("Brightness", BRIGHTNESS),
            mode: EnumParam::new("Latency Mode", ModeParam::Quality).non_automatable(),
            mix: percent_param("Mix", MIX).with_smoother(SmoothingStyle::Linear(20.0)),
            output_gain: output_gain_param(),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            offline: EnumParam::new("Offline Render", OfflineRender::Auto).non_automatable(),
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
            auto_level: self.auto_level.value(),
        }
    }

    /// Styles A and B as chosen by the parameters; `None` when no model exists.
    fn choice(&self) -> Option<StyleChoice> {
        style_choice(&self.style, &self.style_b)
    }
}

/// Why [`style_choice`] chose nothing: no model installed, or Style on an empty slot.
pub(super) fn no_style_reason() -> &'static str {
    if style_models().is_empty() {
        "no timbre model found"
    } else {
        "the Style parameter is on an empty slot"
    }
}

/// Styles A and B as chosen by a plugin's Style and Style B parameters (B off when it is A);
/// `None` when Style picks no model (see [`no_style_reason`]).
pub(super) fn style_choice(a_param: &IntParam, b_param: &IntParam) -> Option<StyleChoice> {
    let a = style_a().name(a_param.value())?;
    let b = style_b().name(b_param.value()).filter(|b| *b != a);
    Some(StyleChoice {
        a: a.to_owned(),
        b: b.map(str::to_owned),
    })
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
    /// The f0 floor of the analysis whose latency the host was told (`None` while activate
    /// builds the first processor, which analyses from its models' own floor). A model chosen
    /// later that was trained from another floor (a cello's 64 Hz) would have another latency,
    /// which may change only in `activate`: it is analysed from this floor until the host
    /// restarts Style, and `floor_differs` says a restart is wanted.
    f0_floor_hz: Option<f32>,
    floor_differs: Arc<AtomicBool>,
}

impl BuildContext {
    /// A processor playing `choice`, or the dry processor (same latency) with the reason logged
    /// when it cannot be loaded; `Err` with the reason when no processor can run at this rate.
    fn build(&self, choice: Option<&StyleChoice>) -> Result<StyleProcessor, String> {
        let cannot_run = |e| format!("cannot run at {} Hz: {e}", self.sample_rate);
        // Before loading models: they are of no use at a rate the processor cannot run at.
        StyleProcessor::supported_rate(self.sample_rate).map_err(cannot_run)?;
        let voice = match choice {
            None => {
                self.report(format!("{}: passing audio through dry", no_style_reason()));
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
                Ok(mut voice) => {
                    // A refused style B plays A alone; the log says so, not "A ↔ B".
                    let playing = match self.status.style_b_refused() {
                        Some(why) => format!("playing {} ({why})", choice.a),
                        None => format!("playing {}", describe(choice)),
                    };
                    match self.keep_running_floor(&mut voice) {
                        Some(note) => self.report(format!("{playing}; {note}")),
                        None => self.report(playing),
                    }
                    Some(voice)
                }
                Err(e) => {
                    self.status.load_errors.fetch_add(1, Ordering::Relaxed);
                    self.report(format!(
                        "cannot load {}: {}",
                        describe(choice),
                        chain_message(&e)
                    ));
                    None
                }
            },
        };
        match voice {
            Some(voice) => {
                StyleProcessor::new(self.sample_rate, self.channels, self.mode, Some(voice))
            }
            // Nothing to play: pass the input through with the running latency (at activation,
            // the default floor's).
            None => {
                self.floor_differs.store(false, Ordering::Relaxed);
                let floor = self.f0_floor_hz.unwrap_or(F0_MIN_HZ);
                StyleProcessor::dry(self.sample_rate, self.channels, self.mode, floor)
            }
        }
        .map_err(cannot_run)
    }

    /// Makes `voice` analyse from the running floor when its models want another one, and
    /// says so (`None` when they fit, or while activate is choosing the floor).
    fn keep_running_floor(&self, voice: &mut TimbreVoice) -> Option<String> {
        let running = self.f0_floor_hz?;
        let wanted = voice.models_f0_floor_hz();
        let floor = |hz| self.mode.analysis_config(hz).min_f0_hz;
        let differs = floor(wanted) != floor(running);
        self.floor_differs.store(differs, Ordering::Relaxed);
        if !differs {
            return None;
        }
        if let Err(e) = voice.set_f0_floor(running) {
            return Some(format!("cannot keep the running analysis: {e}"));
        }
        Some(format!(
            "tracking f0 from {} Hz until the host restarts Style (the model was trained from \
             {} Hz, which changes the latency)",
            floor(running),
            floor(wanted)
        ))
    }

    fn report(&self, message: String) {
        report(&self.status, message);
    }
}

/// Logs `message` and makes it the status the UI shows.
fn report(status: &StyleStatus, message: String) {
    nice_log!("Continuo Style: {message}");
    status.set(message);
}

/// "A" or "A ↔ B", for messages.
pub(super) fn describe(choice: &StyleChoice) -> String {
    match &choice.b {
        Some(b) => format!("{} ↔ {b}", choice.a),
        None => choice.a.clone(),
    }
}

/// Watches Style A/B and hot-swaps a newly loaded processor in (see [`ChoiceLoader`]).
fn spawn_loader(
    params: Arc<StyleParams>,
    build: BuildContext,
    loaded: Option<StyleChoice>,
    commands: Sender<AudioCommand<StyleProcessor>>,
) -> Option<ChoiceLoader> {
    ChoiceLoader::spawn(
        "continuo-style-loader",
        loaded,
        move || params.choice(),
        move |wanted| {
            match build.build(wanted.as_ref()) {
                Ok(processor) => return commands.send(AudioCommand::Replace(processor)).is_ok(),
                Err(reason) => build.report(format!("{reason}; the current style plays on")),
            }
            true
        },
    )
}

/// The running engine. Field order is drop order: the loader (holding a command sender) stops
/// before the worker handle joins the worker.
struct Running {
    _loader: Option<ChoiceLoader>,
    engine: AudioEngine,
    _worker: WorkerHandle<AudioCommand<StyleProcessor>>,
    timing: Timing,
    /// The latency mode this engine runs (its latency is the one reported to the host).
    mode: ModeParam,
    /// `process` has asked the host to restart the plugin in the other mode (`activate` builds
    /// it and reports its latency: CLAP and VST3 allow latency changes only there). Cleared when
    /// the parameter returns to `mode` and the models fit the running analysis, so switching
    /// again asks again.
    restart_requested: bool,
    /// The chosen models were trained from another f0 floor than the running analysis (see
    /// [`BuildContext::f0_floor_hz`]): another latency, so a restart is wanted too.
    floor_differs: Arc<AtomicBool>,
}

/// The Continuo Style plugin.
pub struct ContinuoStyle {
    params: Arc<StyleParams>,
    settings: Arc<SharedStyleSettings>,
    status: Arc<StyleStatus>,
    /// The engine the editor reports on.
    editor_engine: EngineSlot,
    /// Present between `activate` and `deactivate`, unless Style cannot run at the host's rate
    /// (then audio passes through untouched, with no latency; the status says why).
    running: Option<Running>,
    bypass: BypassFade,
}

impl Default for ContinuoStyle {
    fn default() -> Self {
        let status = Arc::new(StyleStatus::default());
        status.monitor.set_open(crate::editor::feeds_forced_open());
        Self {
            params: Arc::new(StyleParams::default()),
            settings: Arc::new(SharedStyleSettings::default()),
            status,
            editor_engine: EngineSlot::default(),
            running: None,
            bypass: BypassFade::default(),
        }
    }
}

impl ContinuoStyle {
    /// Starts the engine in the chosen latency mode; `Err` with the reason when Style cannot
    /// run (a rate the resamplers do not take, or no worker thread).
    fn start(
        &self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
    ) -> Result<Running, String> {
        let channels = audio_io_layout
            .main_output_channels
            .map_or(2, NonZeroU32::get) as usize;
        let config = EngineConfig {
            sample_rate: buffer_config.sample_rate,
            channels,
            max_block_size: buffer_config.max_buffer_size as usize,
        };
        let mode = self.params.mode.value();
        let floor_differs = Arc::new(AtomicBool::new(false));
        let mut build = BuildContext {
            sample_rate: buffer_config.sample_rate,
            channels,
            mode: mode.into(),
            dirs: ModelDirs::standard(&[]),
            settings: self.settings.clone(),
            status: self.status.clone(),
            f0_floor_hz: None,
            floor_differs: floor_differs.clone(),
        };
        // Activation may block: the first models load here, so an offline bounce is wet from
        // its first sample. Their analysis sets the latency reported to the host.
        let choice = self.params.choice();
        let processor = build.build(choice.as_ref())?;
        build.f0_floor_hz = Some(processor.f0_floor_hz());
        let (engine, worker) = audio::start(config, processor)
            .map_err(|e| format!("cannot start the worker thread: {e}"))?;
        let timing = host_timing(buffer_config.process_mode);
        let loader = worker
            .sender()
            .and_then(|commands| spawn_loader(self.params.clone(), build, choice, commands));
        Ok(Running {
            _loader: loader,
            engine,
            _worker: worker,
            timing,
            mode,
            restart_requested: false,
            floor_differs,
        })
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
    type Editor = SizedEditor<StyleEditor>;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        let (params, status, engine) = (
            self.params.clone(),
            self.status.clone(),
            self.editor_engine.clone(),
        );
        let view = move || {
            let dirs = ModelDirs::standard(&[]);
            StyleEditor::new(params.clone(), status.clone(), engine.clone(), dirs)
        };
        let size = self.params.editor_size.clone();
        Some(SizedEditor::new(size, (620.0, 480.0), Self::NAME, view))
    }

    fn filter_state(state: &mut PluginState) {
        // Sessions from before Auto Level played the input at its own level: keep them so.
        state
            .params
            .entry("auto_level".to_owned())
            .or_insert(ParamValue::Bool(false));
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
        self.bypass.set_sample_rate(buffer_config.sample_rate);
        self.settings.store(&self.params.style_settings());
        // Activation never fails: a host may ask for any rate, and refusing it leaves the track
        // silent. Where Style cannot run, the audio passes through untouched, with no latency.
        let mut editor_engine = None;
        match self.start(audio_io_layout, buffer_config) {
            Ok(running) => {
                context.set_latency_samples(running.engine.latency_samples() as u32);
                editor_engine = Some(RunningEngine {
                    stats: running.engine.stats().clone(),
                    latency_samples: running.engine.latency_samples(),
                    sample_rate: buffer_config.sample_rate,
                });
                self.running = Some(running);
            }
            Err(reason) => {
                report(
                    &self.status,
                    format!("{reason}: passing audio through untouched"),
                );
                context.set_latency_samples(0);
            }
        }
        if let Ok(mut slot) = self.editor_engine.lock() {
            *slot = editor_engine;
        }
        log_model_runtime();
        true
    }

    fn reset(&mut self) {
        if let Some(running) = &mut self.running {
            running.engine.reset();
        }
        self.bypass.reset(self.params.bypass.value());
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(running) = &mut self.running else {
            // Not activated, or Style cannot run at this rate: pass the audio through (only
            // subnormals become 0).
            for channel in buffer.as_slice() {
                for sample in channel.iter_mut() {
                    *sample = audio::flush_subnormal(*sample);
                }
            }
            return ProcessStatus::Normal;
        };
        let latency_differs = self.params.mode.value() != running.mode
            || running.floor_differs.load(Ordering::Relaxed);
        if !latency_differs {
            running.restart_requested = false;
        } else if !running.restart_requested {
            // The other mode (or a model trained from another f0 floor) has another latency,
            // which may change only in `activate`: ask the host to restart the plugin (CLAP
            // request_restart, VST3 restartComponent). Until it does, the running analysis
            // plays on and its latency stays the reported one.
            context.request_restart();
            running.restart_requested = true;
        }
        self.settings.store(&self.params.style_settings());
        self.bypass.follow(self.params.bypass.value());
        let params = &self.params;
        let bypass = &self.bypass;
        // Levels for the editor's meters, only while it is open.
        let monitor = self
            .status
            .monitor
            .is_open()
            .then_some(&self.status.monitor);
        let input_peak = monitor.map_or(0.0, |_| peak(buffer.as_slice()));
        let timing = params.offline.value().timing(running.timing);
        running
            .engine
            .process(buffer.as_slice(), timing, || MixGain {
                mix: params.mix.smoothed.next(),
                gain: params.output_gain.smoothed.next(),
                bypass: bypass.next(),
            });
        if let Some(monitor) = monitor {
            monitor.record_peaks(input_peak, peak(buffer.as_slice()));
        }
        ProcessStatus::Normal
    }

    fn deactivate(&mut self) {
        self.running = None;
        if let Ok(mut slot) = self.editor_engine.lock() {
            *slot = None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::test_support::assert_text_round_trips;

    #[test]
    fn every_parameter_text_parses_back_to_the_same_value() {
        let params = StyleParams::default();
        let map = params.param_map();
        assert!(map.len() >= 13, "all parameters walked");
        for (id, param, _) in map {
            assert_text_round_trips(&id, param);
        }
        // The model choices, with models installed and without (which one the machine running
        // this test has is up to it).
        for names in [&["violin", "flute"][..], &[]] {
            for spare in [0, 3] {
                let models: &'static ModelList =
                    Box::leak(Box::new(ModelList::fixed(names, spare)));
                for first in [0, 1] {
                    let choice = ModelChoice::new(models, first);
                    let param = choice.param("Model", 0, &SavedModelName::new(choice));
                    let name = format!("{names:?} and {spare} slots from {first}");
                    assert_text_round_trips(&name, param.as_ptr());
                }
            }
        }
    }

    #[test]
    fn parameter_ranges_and_defaults_are_the_param_specs() {
        let params = StyleParams::default();
        let floats = [
            (&params.morph, MORPH),
            (&params.pitch_shift, PITCH_SHIFT),
            (&params.input_gain, INPUT_GAIN),
            (&params.gate, GATE),
            (&params.balance, BALANCE),
            (&params.brightness, BRIGHTNESS),
            (&params.mix, MIX),
        ];
        for (param, spec) in floats {
            let name = param.name();
            assert_eq!(param.preview_plain(0.0), spec.min, "{name}");
            assert_eq!(param.preview_plain(1.0), spec.max, "{name}");
            assert_eq!(param.default_plain_value(), spec.default, "{name}");
        }
        let octave = &params.octave;
        assert_eq!(octave.preview_plain(0.0) as f32, OCTAVE.min);
        assert_eq!(octave.preview_plain(1.0) as f32, OCTAVE.max);
        assert_eq!(octave.default_plain_value() as f32, OCTAVE.default);
        let gain_db = |normalized| util::gain_to_db(params.output_gain.preview_plain(normalized));
        assert!((gain_db(0.0) - OUTPUT_GAIN.min).abs() < 1e-4);
        assert!((gain_db(1.0) - OUTPUT_GAIN.max).abs() < 1e-4);
        let default_db = util::gain_to_db(params.output_gain.default_plain_value());
        assert!((default_db - OUTPUT_GAIN.default).abs() < 1e-4);
        // What the worker reads from a fresh instance is the specs' defaults.
        assert_eq!(params.style_settings(), StyleSettings::default());
    }
}
