//! Continuo Style: restyles live audio (for now STFT analysis/resynthesis) with a
//! latency-compensated dry/wet mix.

use std::num::NonZeroU32;
use std::sync::Arc;

use nice_plug::prelude::*;

use crate::engine::audio::{self, AudioCommand, AudioEngine, EngineConfig, MixGain, Timing};
use crate::engine::worker::WorkerHandle;
use crate::style::StftResynthesis;

/// Parameters. IDs are stable: never rename them (saved sessions refer to them).
#[derive(Params)]
pub struct StyleParams {
    /// Dry/wet balance, linear (dry and wet are phase-aligned).
    #[id = "mix"]
    pub mix: FloatParam,
    /// Gain after the mix.
    #[id = "out_gain"]
    pub output_gain: FloatParam,
    /// Host bypass: crossfades to the latency-compensated dry signal, so latency never changes.
    #[id = "bypass"]
    pub bypass: BoolParam,
}

impl Default for StyleParams {
    fn default() -> Self {
        Self {
            mix: FloatParam::new("Mix", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(20.0))
                .with_unit("%")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
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

/// The running engine; dropping it stops and joins the worker.
struct Running {
    engine: AudioEngine,
    _worker: WorkerHandle<AudioCommand<StftResynthesis>>,
    timing: Timing,
}

/// The Continuo Style plugin.
pub struct ContinuoStyle {
    params: Arc<StyleParams>,
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

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        let channels = audio_io_layout
            .main_output_channels
            .map_or(2, NonZeroU32::get) as usize;
        let config = EngineConfig {
            sample_rate: buffer_config.sample_rate,
            channels,
            max_block_size: buffer_config.max_buffer_size as usize,
        };
        let processor = StftResynthesis::new(buffer_config.sample_rate, channels);
        // Stop a previous worker before starting the next.
        self.running = None;
        let Ok((engine, worker)) = audio::start(config, processor) else {
            return false;
        };
        context.set_latency_samples(engine.latency_samples() as u32);
        let timing = match buffer_config.process_mode {
            ProcessMode::Offline => Timing::Offline,
            ProcessMode::Realtime | ProcessMode::Buffered => Timing::Realtime,
        };
        self.sample_rate = buffer_config.sample_rate;
        self.running = Some(Running {
            engine,
            _worker: worker,
            timing,
        });
        log_model_runtime();
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
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let Some(running) = &mut self.running else {
            // Not activated: leave the audio untouched.
            return ProcessStatus::Normal;
        };
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
/// thread, so activation stays quick, and logs which one models will run on.
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
