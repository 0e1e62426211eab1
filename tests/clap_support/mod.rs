//! A minimal CLAP host on clack-host, shared by the tests that load the built bundle.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use clack_extensions::gui::{GuiSize, HostGui, HostGuiImpl};
use clack_extensions::latency::{HostLatency, HostLatencyImpl, PluginLatency};
use clack_extensions::params::{ParamInfoBuffer, ParamInfoFlags, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_host::events::event_types::{TransportEvent, TransportFlags};
use clack_host::events::{EventFlags, EventHeader};
use clack_host::prelude::*;
use clack_host::utils::{BeatTime, SecondsTime};

pub const STYLE_ID: &CStr = c"org.continuo.style";
pub const PHRASE_ID: &CStr = c"org.continuo.phrase";
pub const VOICE_ID: &CStr = c"org.continuo.voice";

/// The bundle `cargo xtask bundle` built (or `CONTINUO_CLAP_BUNDLE`).
pub fn built_bundle() -> PathBuf {
    let path = std::env::var_os("CONTINUO_CLAP_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bundled/Continuo.clap")
        });
    assert!(
        path.exists(),
        "{} not found: build it first with `cargo xtask bundle continuo --features assert_process_allocs` (or run .ci/run)",
        path.display()
    );
    path
}

/// Loads a CLAP bundle file.
pub fn load_bundle(path: &Path) -> PluginEntry {
    // Every CLAP test runs the editors' live feeds (level meters, pitch trail, piano roll) as
    // if an editor were open, so `assert_process_allocs` covers them too.
    if std::env::var_os("CONTINUO_EDITOR_FEEDS").is_none() {
        std::env::set_var("CONTINUO_EDITOR_FEEDS", "1");
    }
    // SAFETY: loading a CLAP bundle runs its initialisation code; this is our own plugin.
    unsafe { PluginEntry::load(path) }
        .unwrap_or_else(|error| panic!("{}: cannot load: {error}", path.display()))
}

pub fn instance(entry: &PluginEntry, id: &CStr) -> PluginInstance<()> {
    let host = HostInfo::new(
        "continuo-test-host",
        "Continuo",
        "https://example.invalid",
        "0.1",
    )
    .expect("host info");
    PluginInstance::<()>::new(|_| (), |_| (), entry, id, &host).expect("instantiate")
}

/// What a plugin asked of a [`RecordingHost`], and when.
#[derive(Default)]
pub struct HostRecord {
    /// `host.request_restart` calls (thread-safe: process() may make them).
    pub restart_requests: AtomicU32,
    /// The plugin asked for `on_main_thread`; [`run_main_thread_callback`] serves it.
    pub callback_requested: AtomicBool,
    /// Set by [`activate_recorded`] while the plugin's `activate` runs.
    pub activating: AtomicBool,
    /// `host_latency.changed` calls inside `activate` (the only place CLAP allows them).
    pub latency_changed_in_activate: AtomicU32,
    /// `host_latency.changed` calls anywhere else: each one a CLAP violation.
    pub latency_changed_outside_activate: AtomicU32,
}

impl SharedHandler<'_> for HostRecord {
    fn request_restart(&self) {
        self.restart_requests.fetch_add(1, Ordering::SeqCst);
    }
    fn request_process(&self) {}
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

/// The main-thread side of a [`RecordingHost`].
pub struct RecordingMainThread<'a> {
    record: &'a HostRecord,
}

impl<'a> MainThreadHandler<'a> for RecordingMainThread<'a> {}

impl HostLatencyImpl for RecordingMainThread<'_> {
    fn changed(&self) {
        let counter = if self.record.activating.load(Ordering::SeqCst) {
            &self.record.latency_changed_in_activate
        } else {
            &self.record.latency_changed_outside_activate
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The host side of an embedded editor: the window is the host's and stays as it is.
impl HostGuiImpl for HostRecord {
    fn resize_hints_changed(&self) {}
    fn request_resize(&self, _new_size: GuiSize) -> Result<(), HostError> {
        Ok(())
    }
    fn request_show(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn request_hide(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn closed(&self, _was_destroyed: bool) {}
}

/// A host that supports the latency and GUI extensions and records restart requests and
/// latency notifications (as clap-validator checks them).
pub struct RecordingHost;

impl HostHandlers for RecordingHost {
    type Shared<'a> = HostRecord;
    type MainThread<'a> = RecordingMainThread<'a>;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostLatency>().register::<HostGui>();
    }
}

pub fn recording_instance(entry: &PluginEntry, id: &CStr) -> PluginInstance<RecordingHost> {
    let host = HostInfo::new(
        "continuo-recording-host",
        "Continuo",
        "https://example.invalid",
        "0.1",
    )
    .expect("host info");
    PluginInstance::<RecordingHost>::new(
        |_| HostRecord::default(),
        |record| RecordingMainThread { record },
        entry,
        id,
        &host,
    )
    .expect("instantiate")
}

/// Activates, marking the call so latency notifications inside it are told apart.
pub fn activate_recorded(
    plugin: &mut PluginInstance<RecordingHost>,
    config: PluginAudioConfiguration,
) -> StoppedPluginAudioProcessor<RecordingHost> {
    plugin.access_shared_handler(|r| r.activating.store(true, Ordering::SeqCst));
    let processor = plugin.activate(|_, _| (), config);
    plugin.access_shared_handler(|r| r.activating.store(false, Ordering::SeqCst));
    processor.expect("activate")
}

/// Serves a pending `on_main_thread` request, as a host's idle loop does.
pub fn run_main_thread_callback(plugin: &mut PluginInstance<RecordingHost>) {
    if plugin.access_shared_handler(|r| r.callback_requested.swap(false, Ordering::SeqCst)) {
        plugin.call_on_main_thread_callback();
    }
}

/// A counter of the host record.
pub fn recorded(
    plugin: &PluginInstance<RecordingHost>,
    counter: impl FnOnce(&HostRecord) -> &AtomicU32,
) -> u32 {
    plugin.access_shared_handler(|r| counter(r).load(Ordering::SeqCst))
}

/// The latency the plugin reports now.
pub fn latency<H: HostHandlers>(plugin: &mut PluginInstance<H>) -> u32 {
    let handle = plugin.plugin_handle();
    let latency: PluginLatency = handle.get_extension().expect("latency extension");
    latency.get(&handle)
}

/// Parameter id by display name, through the params extension.
pub fn param_id<H: HostHandlers>(plugin: &mut PluginInstance<H>, name: &str) -> ClapId {
    let handle = plugin.plugin_handle();
    let params: PluginParams = handle.get_extension().expect("params extension");
    let mut buffer = ParamInfoBuffer::new();
    (0..params.count(&handle))
        .filter_map(|index| {
            params
                .get_info(&handle, index, &mut buffer)
                .map(|info| (info.id, info.name.to_vec()))
        })
        .find(|(_, param_name)| param_name.as_slice() == name.as_bytes())
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no parameter named {name}"))
}

/// The value a parameter takes for `text` (e.g. a model's name), through the params extension.
pub fn param_value_of_text<H: HostHandlers>(
    plugin: &mut PluginInstance<H>,
    id: ClapId,
    text: &str,
) -> f64 {
    let handle = plugin.plugin_handle();
    let params: PluginParams = handle.get_extension().expect("params extension");
    let text = std::ffi::CString::new(text).expect("no NUL in parameter text");
    params
        .text_to_value(&handle, id, &text)
        .unwrap_or_else(|| panic!("no value for {text:?}"))
}

/// The text a parameter shows for `value` (e.g. a model's name), through the params extension.
pub fn param_text<H: HostHandlers>(
    plugin: &mut PluginInstance<H>,
    id: ClapId,
    value: f64,
) -> String {
    let handle = plugin.plugin_handle();
    let params: PluginParams = handle.get_extension().expect("params extension");
    let mut text = [0u8; 256];
    let shown = params
        .value_to_text(&handle, id, value, &mut text)
        .expect("value text");
    String::from_utf8_lossy(shown).into_owned()
}

/// A transport event at `beat` and `tempo`, playing or stopped.
pub fn transport(tempo: f64, beat: f64, playing: bool) -> TransportEvent {
    let playing_flag = if playing {
        TransportFlags::IS_PLAYING
    } else {
        TransportFlags::empty()
    };
    TransportEvent {
        header: EventHeader::new_core(0, EventFlags::empty()),
        flags: TransportFlags::HAS_TEMPO | TransportFlags::HAS_BEATS_TIMELINE | playing_flag,
        song_pos_beats: BeatTime::from_float(beat),
        song_pos_seconds: SecondsTime::from_float(0.0),
        tempo,
        tempo_inc: 0.0,
        loop_start_beats: BeatTime::from_float(0.0),
        loop_end_beats: BeatTime::from_float(0.0),
        loop_start_seconds: SecondsTime::from_float(0.0),
        loop_end_seconds: SecondsTime::from_float(0.0),
        bar_start: BeatTime::from_float(0.0),
        bar_number: 0,
        time_signature_numerator: 4,
        time_signature_denominator: 4,
    }
}

/// Copies the built `.clap` (and, if asked, its `Continuo-data/`) into `dir` under a new name,
/// so the dynamic linker treats it as a separate library.
pub fn copy_bundle(dir: &Path, name: &str, with_data: bool) -> std::path::PathBuf {
    let built = built_bundle();
    let copy = dir.join(format!("{name}.clap"));
    std::fs::copy(&built, &copy).expect("copy .clap");
    if with_data {
        let data = built.parent().expect("bundle dir").join("Continuo-data");
        let target = dir.join("Continuo-data");
        std::fs::create_dir_all(&target).expect("data dir");
        for entry in std::fs::read_dir(&data).expect("Continuo-data next to the built bundle") {
            let entry = entry.expect("entry");
            if entry.path().is_file() {
                std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy data");
            }
        }
    }
    copy
}

/// Audio ports for one stereo-in, stereo-out plugin, reused block after block.
pub struct StereoPorts {
    input: AudioPorts,
    output: AudioPorts,
}

impl StereoPorts {
    pub fn new() -> Self {
        Self {
            input: AudioPorts::with_capacity(2, 1),
            output: AudioPorts::with_capacity(2, 1),
        }
    }

    /// Processes one block: `left`/`right` in, the plugin's stereo output returned.
    pub fn process<H: HostHandlers>(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<H>,
        left: &[f32],
        right: &[f32],
        events: &InputEvents<'_>,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut output_events = EventBuffer::new();
        self.process_with(processor, left, right, events, &mut output_events, None)
    }

    /// [`Self::process`] with the host's transport, keeping the events the plugin sends.
    pub fn process_with<H: HostHandlers>(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<H>,
        left: &[f32],
        right: &[f32],
        events: &InputEvents<'_>,
        output_events: &mut EventBuffer,
        transport: Option<&TransportEvent>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (mut left_in, mut right_in) = (left.to_vec(), right.to_vec());
        let mut left_out = vec![0.0f32; left.len()];
        let mut right_out = vec![0.0f32; left.len()];
        let mut output_events = OutputEvents::from_buffer(output_events);
        let audio_in = self.input.with_input_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_input_only(
                [
                    InputChannel::variable(&mut left_in),
                    InputChannel::variable(&mut right_in),
                ]
                .into_iter(),
            ),
        }]);
        let mut audio_out = self.output.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                [left_out.as_mut_slice(), right_out.as_mut_slice()].into_iter(),
            ),
        }]);
        processor
            .process(
                &audio_in,
                &mut audio_out,
                events,
                &mut output_events,
                None,
                transport,
            )
            .expect("process");
        (left_out, right_out)
    }
}

/// Stereo output buffers for an instrument (no audio input), reused block after block.
pub struct InstrumentPorts {
    output: AudioPorts,
    left: Vec<f32>,
    right: Vec<f32>,
}

impl InstrumentPorts {
    pub fn new(block: usize) -> Self {
        Self {
            output: AudioPorts::with_capacity(2, 1),
            left: vec![0.0; block],
            right: vec![0.0; block],
        }
    }

    /// Processes one block with `events` in; the plugin's (left, right) output.
    pub fn process<H: HostHandlers>(
        &mut self,
        processor: &mut StartedPluginAudioProcessor<H>,
        events: &EventBuffer,
    ) -> (&[f32], &[f32]) {
        let mut audio_out = self.output.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                [self.left.as_mut_slice(), self.right.as_mut_slice()].into_iter(),
            ),
        }]);
        processor
            .process(
                &InputAudioBuffers::empty(),
                &mut audio_out,
                &events.as_input(),
                &mut OutputEvents::void(),
                None,
                None,
            )
            .expect("process");
        (&self.left, &self.right)
    }
}

/// Plays `input` (the same on both channels) through `processor` on an audio thread in blocks of
/// `block`, sending `events(block_index)` with each block; returns the processor and the left
/// output.
pub fn play<H: HostHandlers>(
    processor: StoppedPluginAudioProcessor<H>,
    input: &[f32],
    block: usize,
    events: impl Fn(usize) -> Vec<clack_host::events::event_types::ParamValueEvent> + Send,
) -> (StoppedPluginAudioProcessor<H>, Vec<f32>)
where
    StoppedPluginAudioProcessor<H>: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = StereoPorts::new();
                let mut output = Vec::with_capacity(input.len());
                for (index, chunk) in input.chunks(block).enumerate() {
                    let events = events(index);
                    let (left, right) = ports.process(
                        &mut processor,
                        chunk,
                        chunk,
                        &InputEvents::from_buffer(&events),
                    );
                    assert!(left.iter().chain(&right).all(|y| y.is_finite()));
                    output.extend_from_slice(&left);
                }
                (processor.stop_processing(), output)
            })
            .join()
            .expect("audio thread")
    })
}

/// Activates `plugin` for an offline render (CLAP's render extension) at `sample_rate` with
/// blocks of up to `max_block` samples.
pub fn activate_offline(
    plugin: &mut PluginInstance<()>,
    sample_rate: f64,
    max_block: u32,
) -> StoppedPluginAudioProcessor<()> {
    let render: PluginRender = plugin
        .plugin_handle()
        .get_extension()
        .expect("render extension");
    render
        .set(&plugin.plugin_handle(), RenderMode::Offline)
        .expect("offline render mode");
    let config = PluginAudioConfiguration {
        sample_rate,
        min_frames_count: 1,
        max_frames_count: max_block,
    };
    plugin.activate(|_, _| (), config).expect("activate")
}

/// The parameter called `name`.
pub fn by_name<'a>(params: &'a [HostParam], name: &str) -> &'a HostParam {
    params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// A parameter as a host sees it.
#[derive(Debug, Clone)]
pub struct HostParam {
    pub id: ClapId,
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub stepped: bool,
}

/// Every parameter a host may set (not read-only, not hidden).
pub fn settable_params(plugin: &mut PluginInstance<()>) -> Vec<HostParam> {
    let handle = plugin.plugin_handle();
    let params: PluginParams = handle.get_extension().expect("params extension");
    let mut buffer = ParamInfoBuffer::new();
    (0..params.count(&handle))
        .filter_map(|index| {
            let info = params.get_info(&handle, index, &mut buffer)?;
            let hidden = ParamInfoFlags::IS_READONLY | ParamInfoFlags::IS_HIDDEN;
            (!info.flags.intersects(hidden)).then(|| HostParam {
                id: info.id,
                name: String::from_utf8_lossy(info.name).into_owned(),
                min: info.min_value,
                max: info.max_value,
                default: info.default_value,
                stepped: info.flags.contains(ParamInfoFlags::IS_STEPPED),
            })
        })
        .collect()
}

/// Plays `blocks` blocks of `block` samples through a started Voice on an audio thread,
/// `events(block_index, buffer)` filling each block's input events; returns the left output.
pub fn play_voice(
    processor: StoppedPluginAudioProcessor<()>,
    block: usize,
    blocks: usize,
    events: impl Fn(usize, &mut EventBuffer) + Send,
) -> (StoppedPluginAudioProcessor<()>, Vec<f32>) {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let mut processor = processor.start_processing().expect("start processing");
                let mut ports = InstrumentPorts::new(block);
                let mut output = Vec::with_capacity(block * blocks);
                for index in 0..blocks {
                    let mut input = EventBuffer::new();
                    events(index, &mut input);
                    let (left, right) = ports.process(&mut processor, &input);
                    assert!(left.iter().chain(right).all(|y| y.is_finite()));
                    assert_eq!(left, right, "both channels play the same line");
                    output.extend_from_slice(left);
                }
                (processor.stop_processing(), output)
            })
            .join()
            .expect("audio thread")
    })
}

/// Resident set size of this process (the host, with the plugin in it), in MiB.
pub fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    pages * page / (1024.0 * 1024.0)
}
