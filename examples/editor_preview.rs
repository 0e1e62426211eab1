//! Opens one plugin editor in a window of its own (no host), fed by the real engine: Style
//! restyles a synthesised melody with a shipped model in real time; Phrase hears a melody at
//! 120 BPM and continues it with a shipped model. `cargo xtask screenshots` runs it under Xvfb
//! and saves what it shows; run it yourself on a desktop to try an editor:
//!
//! ```text
//! cargo run --example editor_preview -- style|phrase [--screenshot OUT.png --after SECONDS]
//! ```
//!
//! With `--screenshot`, the window's area of the X screen is saved as a PNG after the given
//! time (default 6 s: Phrase has heard its tune and answered) and the program exits.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use continuo::editor::phrase::PhraseEditor;
use continuo::editor::style::{RunningEngine, StyleEditor};
use continuo::editor::{hostless_context, saved_size, EditorView, SizedEditor};
use continuo::engine::audio::{self, EngineConfig, MixGain, Timing};
use continuo::midi::Note;
use continuo::model::{BackendChoice, ModelDirs};
use continuo::phrase::engine::{
    self as phrase_engine, KeyLock, ModelSource, PhraseRequest, TransportInfo,
};
use continuo::phrase::generate::GenerationSettings;
use continuo::phrase::roll::RollFeed;
use continuo::plugin::phrase::{model_choice, PhraseParams};
use continuo::plugin::style::{style_models, StyleParams};
use continuo::style::monitor::peak;
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleStatus,
};
use nice_plug::editor::EditorHandle;
use nice_plug::prelude::*;

const RATE: f32 = 48_000.0;
const BLOCK: usize = 512;
const TEMPO_BPM: f64 = 120.0;

const USAGE: &str = "usage: editor_preview style|phrase [--screenshot OUT.png --after SECONDS]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let after: f64 = option("--after")
        .map_or(Ok(6.0), |s| s.parse())
        .context(USAGE)?;
    install_models()?;
    let size = match args.first().map(String::as_str) {
        Some("style") => (760.0, 660.0),
        Some("phrase") => (820.0, 720.0),
        _ => bail!(USAGE),
    };
    if let Some(path) = option("--screenshot") {
        let path = std::path::PathBuf::from(path);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(after));
            let code = match screenshot(&path, size) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("editor_preview: {error:#}");
                    1
                }
            };
            use std::io::Write;
            let _ = std::io::stdout().flush();
            // _exit, not exit: exit's handlers tear down EGL and ONNX Runtime under the render
            // and worker threads, which then fail noisily.
            // SAFETY: ends the process; nothing runs after it.
            unsafe { libc::_exit(code) }
        });
    }
    match args.first().map(String::as_str) {
        Some("style") => open(style()?, "Continuo Style", size),
        _ => open(phrase()?, "Continuo Phrase", size),
    }
}

/// Saves the top-left `size` of the X screen (where the window opens, with no window
/// manager) as an RGB PNG.
fn screenshot(path: &Path, (width, height): (f32, f32)) -> Result<()> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};
    let (width, height) = (width as u16, height as u16);
    let (connection, screen) = x11rb::connect(None).context("connecting to the X server")?;
    let root = connection.setup().roots[screen].root;
    let image = connection
        .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, width, height, !0)?
        .reply()
        .context("reading the screen")?;
    if image.depth != 24 || image.data.len() != usize::from(width) * usize::from(height) * 4 {
        bail!("unexpected screen format (depth {})", image.depth);
    }
    // 24-bit screens hold pixels as little-endian BGRX.
    let rgb: Vec<u8> = image
        .data
        .chunks_exact(4)
        .flat_map(|bgrx| [bgrx[2], bgrx[1], bgrx[0]])
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width.into(), height.into());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    println!("saved {}", path.display());
    Ok(())
}

/// The shipped models where a bundle keeps them (`models/` beside the executable), so the
/// plugins' parameters list them as they do in a host.
fn install_models() -> Result<()> {
    let exe = std::env::current_exe().context("this executable's path")?;
    let target = exe.parent().context("executable directory")?.join("models");
    std::fs::create_dir_all(&target).context("models directory")?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for entry in std::fs::read_dir(&source).context("reading models/")? {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "onnx")
        ) {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, target.join(name))
                    .with_context(|| format!("copying {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Opens `view` in its own window and runs until the window closes.
fn open<V: EditorView>(view: V, title: &'static str, (width, height): (f32, f32)) -> Result<()> {
    // The window opens once: the editor's factory hands over this one view.
    let view = Mutex::new(Some(view));
    let editor = SizedEditor::new(
        saved_size(width, height),
        (width, height),
        title,
        move || {
            view.lock()
                .ok()
                .and_then(|mut view| view.take())
                .expect("the preview opens one window")
        },
    );
    let gui = hostless_context();
    let spawned = editor
        .spawn(None, false, None, gui, None)
        .map_err(|e| anyhow::anyhow!("opening the window: {e}"))?;
    let _handle = spawned.handle;
    <nice_plug_egui::EguiEditorHandle as EditorHandle>::run_until_closed(spawned.window)
        .map_err(|e| anyhow::anyhow!("window: {e}"))
}

/// A melody of harmonic tones with vibrato (what a flute might play), at `RATE`.
#[derive(Default)]
struct Melody {
    sample: usize,
    /// Phase of the fundamental, in cycles (integrated: the pitch moves).
    phase: f32,
}

impl Melody {
    fn next(&mut self) -> f32 {
        const PITCHES: [f32; 8] = [67.0, 69.0, 71.0, 72.0, 74.0, 72.0, 71.0, 69.0];
        const NOTE_SECONDS: f32 = 0.5;
        let t = self.sample as f32 / RATE;
        self.sample += 1;
        let note = PITCHES[(t / NOTE_SECONDS) as usize % PITCHES.len()];
        let vibrato = 1.0 + 0.004 * (std::f32::consts::TAU * 5.5 * t).sin();
        self.phase =
            (self.phase + 440.0 * 2f32.powf((note - 69.0) / 12.0) * vibrato / RATE).fract();
        let within = t % NOTE_SECONDS;
        let envelope = (within / 0.03).min(1.0) * ((NOTE_SECONDS - within) / 0.05).min(1.0);
        let angle = std::f32::consts::TAU * self.phase;
        0.25 * envelope
            * (1..=6)
                .map(|k| (k as f32 * angle).sin() / k as f32)
                .sum::<f32>()
    }
}

fn style() -> Result<StyleEditor> {
    let params = Arc::new(StyleParams::default());
    let status = Arc::new(StyleStatus::default());
    let settings = Arc::new(SharedStyleSettings::default());
    let dirs = ModelDirs::standard(&[]);
    let Some(name) = style_models().get(0) else {
        bail!("no timbre model installed");
    };
    let choice = StyleChoice {
        a: name.to_owned(),
        b: None,
    };
    let voice = load_voice(
        &choice,
        &dirs,
        BackendChoice::Auto,
        LatencyMode::Quality,
        settings,
        status.clone(),
    )?;
    status.set(format!("playing {name}"));
    let processor = StyleProcessor::new(RATE, 2, LatencyMode::Quality, Some(voice))?;
    let config = EngineConfig {
        sample_rate: RATE,
        channels: 2,
        max_block_size: BLOCK,
    };
    let (mut engine, worker) = audio::start(config, processor)?;
    let slot = Arc::new(Mutex::new(Some(RunningEngine {
        stats: engine.stats().clone(),
        latency_samples: engine.latency_samples(),
        sample_rate: RATE,
    })));
    let monitor_status = status.clone();
    std::thread::spawn(move || {
        let _worker = worker;
        let (mut left, mut right) = (vec![0.0; BLOCK], vec![0.0; BLOCK]);
        let mut melody = Melody::default();
        let start = Instant::now();
        for block in 0.. {
            for (l, r) in left.iter_mut().zip(&mut right) {
                *l = melody.next();
                *r = *l;
            }
            let input_peak = peak(&[&left]);
            let mut channels = [&mut left[..], &mut right[..]];
            engine.process(&mut channels, Timing::Realtime, || MixGain {
                mix: 1.0,
                gain: 1.0,
                bypass: 0.0,
            });
            monitor_status
                .monitor
                .record_peaks(input_peak, peak(&channels));
            pace(start, (block + 1) * BLOCK);
        }
    });
    Ok(StyleEditor::new(params, status, slot, dirs))
}

/// Sleeps until `samples` of audio have played since `start`.
fn pace(start: Instant, samples: usize) {
    let due = start + Duration::from_secs_f64(samples as f64 / f64::from(RATE));
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

fn phrase() -> Result<PhraseEditor> {
    let params = Arc::new(PhraseParams::default());
    let roll = Arc::new(RollFeed::default());
    let model = ModelSource {
        choices: model_choice().list().to_vec(),
        initial: 0,
        dirs: ModelDirs::standard(&[]),
        backend: BackendChoice::Auto,
        shelf: Default::default(),
    };
    let (mut realtime, worker, shared) =
        phrase_engine::start(RATE, 32.0, model, roll.clone(), Box::new(|_| {}))?;
    let slot = Arc::new(Mutex::new(Some(shared)));
    let feed = roll.clone();
    std::thread::spawn(move || {
        let _worker = worker;
        // "Twinkle, twinkle", two bars, played from beat 0; a continuation of two bars and
        // three variations is asked for at beat 8.
        let tune: Vec<Note> = [60, 60, 67, 67, 69, 69, 67, 65, 65, 64, 64, 62, 62, 60]
            .iter()
            .enumerate()
            .map(|(i, &p)| Note::new(p, 90, 0, i as f64 * 0.5, i as f64 * 0.5 + 0.45))
            .collect();
        let samples_per_beat = f64::from(RATE) * 60.0 / TEMPO_BPM;
        let start = Instant::now();
        let mut asked = false;
        for block in 0usize.. {
            let first_beat = (block * BLOCK) as f64 / samples_per_beat;
            let last_beat = ((block + 1) * BLOCK) as f64 / samples_per_beat;
            realtime.begin_block(
                TransportInfo {
                    playing: true,
                    tempo_bpm: Some(TEMPO_BPM),
                    pos_beats: Some(first_beat),
                },
                BLOCK,
            );
            feed.set_playhead(first_beat, 4.0);
            for note in &tune {
                for (beat, on) in [(note.start_beat, true), (note.end_beat, false)] {
                    if (first_beat..last_beat).contains(&beat) {
                        let timing = ((beat - first_beat) * samples_per_beat) as u32;
                        realtime.capture(timing, on, 0, note.pitch, 0.7);
                    }
                }
            }
            if !asked && first_beat >= 8.0 {
                asked = realtime.request(PhraseRequest::Generate {
                    trigger_beat: first_beat,
                    tempo_bpm: TEMPO_BPM,
                    settings: GenerationSettings::default(),
                    key_lock: KeyLock::Detect,
                    variations: 3,
                    selected: 0,
                });
            }
            realtime.render(BLOCK as u32);
            realtime.output().drain_sorted().for_each(drop);
            pace(start, (block + 1) * BLOCK);
        }
    });
    Ok(PhraseEditor::new(
        params,
        slot,
        roll,
        Arc::new(AtomicBool::new(false)),
        ModelDirs::standard(&[]),
    ))
}
