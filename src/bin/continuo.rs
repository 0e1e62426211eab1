//! `continuo`: the command-line front end on the plugins' own engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use continuo::dsp::analysis::{analyze as analyze_signal, AnalysisConfig};
use continuo::dsp::notes::{self, NoteTrackerConfig};
use continuo::engine::audio::{self, EngineConfig, MixGain};
use continuo::engine::offline;
use continuo::instrument::settings::{ATTACK, DECAY, RELEASE, SUSTAIN, VIBRATO_DEPTH};
use continuo::instrument::{
    load_bank, notes_from_song, render_notes, InstrumentEngine, PlayMode, SharedVoiceSettings,
    VoiceSettings,
};
use continuo::model::lookup::{scan, ModelDirs};
use continuo::model::{describe_auto_backend, BackendChoice, RuntimeSearch};
use continuo::phrase::generate::{generate, GenerationSettings, ModelSet, Rng};
use continuo::phrase::texture::TextureChoice;
use continuo::style::controls::{
    ParamSpec, BALANCE, BRIGHTNESS, GATE, INPUT_GAIN, MIX, MORPH, OCTAVE, PITCH_SHIFT,
};
use continuo::style::{
    load_voice, LatencyMode, SharedStyleSettings, StyleChoice, StyleProcessor, StyleSettings,
    StyleStatus,
};
use continuo::wav;

#[derive(Parser)]
#[command(
    name = "continuo",
    version,
    about = "Continuo: neural restyling and MIDI continuation, offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Restyle a WAV file through Continuo Style's engine (output aligned with the input).
    Style {
        /// Input WAV (mono or stereo; 16/24/32-bit integer or 32-bit float).
        input: PathBuf,
        /// Output WAV (same sample format as the input).
        #[arg(short, long)]
        output: PathBuf,
        /// Timbre model (style A): a name from the model directories or a manifest path.
        #[arg(long, default_value = continuo::style::DEFAULT_STYLE)]
        model: String,
        /// Second style (B) to morph towards.
        #[arg(long)]
        morph: Option<String>,
        // Ranges and defaults come from the plugin's parameter specs (`style::controls`).
        // Morphing is asked for by naming a B style, so the CLI's default is half-way there.
        #[arg(long, default_value_t = 0.5, requires = "morph",
              value_parser = in_range(MORPH), help = help("Morph amount: 0 = the --model style, 1 = the --morph style", MORPH))]
        amount: f32,
        #[arg(long, default_value_t = PITCH_SHIFT.default, allow_negative_numbers = true,
              value_parser = in_range(PITCH_SHIFT), help = help("Pitch shift in semitones", PITCH_SHIFT))]
        pitch_shift: f32,
        #[arg(long, default_value_t = OCTAVE.default as i32, allow_negative_numbers = true,
              value_parser = clap::value_parser!(i32).range(OCTAVE.min as i64..=OCTAVE.max as i64),
              help = help("Octave shift", OCTAVE))]
        octave: i32,
        #[arg(long, default_value_t = INPUT_GAIN.default, allow_negative_numbers = true,
              value_parser = in_range(INPUT_GAIN), help = help("Gain before analysis, dB", INPUT_GAIN))]
        input_gain: f32,
        /// Let the model hear the input at its own level. By default (Auto Level, as in the
        /// plugin) the input's long-term level is brought to the model's training level, so the
        /// colour does not depend on how hot the WAV was recorded.
        #[arg(long)]
        no_auto_level: bool,
        #[arg(long, default_value_t = GATE.default, allow_negative_numbers = true,
              value_parser = in_range(GATE),
              help = help("Gate threshold, dB: quieter or unvoiced input fades the output out (lowest = off)", GATE))]
        gate: f32,
        #[arg(long, default_value_t = BALANCE.default, allow_negative_numbers = true,
              value_parser = in_range(BALANCE),
              help = help("Harmonic/noise balance: −1 harmonics only, 0 as modelled, 1 noise only", BALANCE))]
        balance: f32,
        #[arg(long, default_value_t = BRIGHTNESS.default, allow_negative_numbers = true,
              value_parser = in_range(BRIGHTNESS), help = help("Brightness (tilt of the harmonics)", BRIGHTNESS))]
        brightness: f32,
        /// Latency mode, as in the plugin.
        #[arg(long, value_enum, default_value_t = ModeArg::Quality)]
        mode: ModeArg,
        #[arg(long, default_value_t = MIX.default,
              value_parser = in_range(MIX), help = help("Dry/wet mix", MIX))]
        mix: f32,
        /// Block size the engine is driven with, as a host would.
        #[arg(long, default_value_t = 512)]
        block: usize,
        /// Extra model directory to search first (repeatable).
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// Continue a MIDI phrase with a continuation model (input + continuation written out).
    Continue {
        /// Input MIDI file (type 0 or 1).
        input: PathBuf,
        /// Output MIDI file; with several variations, `-1`, `-2`, … are added to its name.
        #[arg(short, long)]
        output: PathBuf,
        /// Bars to generate.
        #[arg(long, default_value_t = 4)]
        bars: u32,
        /// Sampling temperature (lower: safer).
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Nucleus sampling mass, 0–1.
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        /// Number of different continuations to write.
        #[arg(long, default_value_t = 1)]
        variations: u32,
        /// Random seed: the same seed gives the same continuation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Model name (from the model directories) or manifest path; `auto` answers a melody
        /// with the melody model and chords with the chorale model.
        #[arg(long, default_value = continuo::phrase::generate::AUTO_MODEL)]
        model: String,
        /// Texture of the continuation: as-played, melody (one note at a time) or chords.
        #[arg(long, default_value = "as-played")]
        texture: TextureChoice,
        /// Let the model leave the input's range (± an octave) and key.
        #[arg(long)]
        no_follow: bool,
        /// Continue only this track (index as listed by the reader; default: all melodic tracks).
        #[arg(long)]
        track: Option<usize>,
        /// Target notes per beat (default: as the model likes).
        #[arg(long)]
        density: Option<f32>,
        /// Keep generated pitches in the key detected from the input.
        #[arg(long)]
        key_lock: bool,
    },
    /// Play a MIDI file with a timbre model through Continuo Voice's engine (the instrument).
    Render {
        /// Input MIDI file (every non-drum track is played).
        input: PathBuf,
        /// Output WAV (mono, 32-bit float).
        #[arg(short, long)]
        output: PathBuf,
        /// Timbre model (style A): a name from the model directories or a manifest path.
        #[arg(long, default_value = continuo::style::DEFAULT_STYLE)]
        model: String,
        /// Second style (B) to morph towards.
        #[arg(long)]
        morph: Option<String>,
        #[arg(long, default_value_t = 0.5, requires = "morph",
              value_parser = in_range(MORPH), help = help("Morph amount: 0 = the --model style, 1 = the --morph style", MORPH))]
        amount: f32,
        /// Sample rate of the output, Hz.
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        #[arg(long, default_value_t = PITCH_SHIFT.default, allow_negative_numbers = true,
              value_parser = in_range(PITCH_SHIFT), help = help("Transpose, semitones", PITCH_SHIFT))]
        pitch_shift: f32,
        #[arg(long, default_value_t = ATTACK.default, value_parser = in_range(ATTACK), help = help("Attack, ms", ATTACK))]
        attack: f32,
        #[arg(long, default_value_t = DECAY.default, value_parser = in_range(DECAY), help = help("Decay, ms", DECAY))]
        decay: f32,
        #[arg(long, default_value_t = SUSTAIN.default, allow_negative_numbers = true,
              value_parser = in_range(SUSTAIN), help = help("Sustain level below the peak, dB", SUSTAIN))]
        sustain: f32,
        #[arg(long, default_value_t = RELEASE.default, value_parser = in_range(RELEASE), help = help("Release (60 dB), ms", RELEASE))]
        release: f32,
        #[arg(long, default_value_t = VIBRATO_DEPTH.default, value_parser = in_range(VIBRATO_DEPTH), help = help("Vibrato depth, cents", VIBRATO_DEPTH))]
        vibrato: f32,
        /// Play one note at a time.
        #[arg(long, value_enum, default_value_t = PlayModeArg::Poly)]
        play_mode: PlayModeArg,
        /// Block size the engine is driven with, as a host would.
        #[arg(long, default_value_t = 512)]
        block: usize,
        /// Extra model directory to search first (repeatable).
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// Show what the models will see: f0, voicing, loudness per frame and onsets.
    Analyze {
        /// Input WAV (channels are averaged).
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Samples per analysis frame.
        #[arg(long, default_value_t = 256)]
        hop: usize,
    },
    /// Transcribe a monophonic recording (voice, wind, strings…) into MIDI notes with the note
    /// tracker Continuo Phrase listens with.
    Transcribe {
        /// Input WAV (channels are averaged).
        input: PathBuf,
        /// Output MIDI file (one track).
        #[arg(short, long)]
        output: PathBuf,
        /// Tempo the notes are written at (their times in seconds are exact at any tempo).
        #[arg(long, default_value_t = 120.0)]
        tempo: f64,
        /// `tracker`: the plugin's causal tracker; `onset-median`: the plain baseline it is
        /// compared with (onsets, median pitch between them).
        #[arg(long, value_enum, default_value_t = TranscribeMethod::Tracker)]
        method: TranscribeMethod,
        /// Place each note-on where the live plugin sends it (when the tracker decided), not
        /// at its estimated onset.
        #[arg(long)]
        as_live: bool,
    },
    /// List the models found (valid or not, with the reason) and the inference backend in use.
    Models {
        /// Extra directory to search first (repeatable).
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// Version, supported formats and where models are looked up.
    Info,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Style {
            input,
            output,
            model,
            morph,
            amount,
            pitch_shift,
            octave,
            input_gain,
            no_auto_level,
            gate,
            balance,
            brightness,
            mode,
            mix,
            block,
            dirs,
        } => {
            let settings = StyleSettings {
                pitch_shift_st: pitch_shift,
                octave: octave as f32,
                input_gain_db: input_gain,
                gate_db: gate,
                balance,
                brightness,
                morph: if morph.is_some() { amount } else { 0.0 },
                auto_level: !no_auto_level,
            };
            let choice = StyleChoice { a: model, b: morph };
            let options = StyleOptions {
                mode: mode.into(),
                mix,
                block,
                dirs,
            };
            style(&input, &output, &choice, settings, &options)
        }
        Command::Render {
            input,
            output,
            model,
            morph,
            amount,
            rate,
            pitch_shift,
            attack,
            decay,
            sustain,
            release,
            vibrato,
            play_mode,
            block,
            dirs,
        } => {
            let settings = VoiceSettings {
                style: StyleSettings {
                    pitch_shift_st: pitch_shift,
                    morph: if morph.is_some() { amount } else { 0.0 },
                    ..StyleSettings::default()
                },
                attack_ms: attack,
                decay_ms: decay,
                sustain_db: sustain,
                release_ms: release,
                vibrato_cents: vibrato,
                mode: play_mode.into(),
                ..VoiceSettings::default()
            };
            let choice = StyleChoice { a: model, b: morph };
            render(&input, &output, &choice, settings, rate, block, &dirs)
        }
        Command::Analyze { input, json, hop } => analyze(&input, json, hop),
        Command::Transcribe {
            input,
            output,
            tempo,
            method,
            as_live,
        } => transcribe(&input, &output, tempo, method, as_live),
        Command::Continue {
            input,
            output,
            bars,
            temperature,
            top_p,
            variations,
            seed,
            model,
            texture,
            no_follow,
            track,
            density,
            key_lock,
        } => {
            let settings = GenerationSettings {
                bars,
                temperature,
                top_p,
                density_notes_per_beat: density,
                texture,
                follow_input: !no_follow,
                ..GenerationSettings::default()
            };
            let options = ContinueOptions {
                variations,
                seed,
                model,
                track,
                key_lock,
            };
            continue_phrase(&input, &output, settings, &options)
        }
        Command::Models { dirs } => {
            models(&dirs);
            Ok(())
        }
        Command::Info => {
            info();
            Ok(())
        }
    }
}

/// An argument parser for a value in `spec`'s range (the plugin's range for that control).
fn in_range(spec: ParamSpec) -> impl Fn(&str) -> Result<f32, String> + Clone + Send + Sync {
    move |text| {
        let value: f32 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        if spec.contains(value) {
            Ok(value)
        } else {
            Err(format!("must be between {} and {}", spec.min, spec.max))
        }
    }
}

/// An argument's help: `what` and `spec`'s range.
fn help(what: &str, spec: ParamSpec) -> String {
    format!("{what} ({} … {})", spec.min, spec.max)
}

/// Play mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlayModeArg {
    /// Chords; the oldest note is stolen beyond eight.
    Poly,
    /// One note at a time, each with its own attack.
    Mono,
    /// One note at a time, gliding without a new attack while a key is held.
    Legato,
}

impl From<PlayModeArg> for PlayMode {
    fn from(mode: PlayModeArg) -> Self {
        match mode {
            PlayModeArg::Poly => PlayMode::Poly,
            PlayModeArg::Mono => PlayMode::Mono,
            PlayModeArg::Legato => PlayMode::Legato,
        }
    }
}

/// Latency mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    /// Shorter analysis, less latency.
    LowLatency,
    /// The analysis the model was trained with.
    Quality,
}

impl From<ModeArg> for LatencyMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::LowLatency => LatencyMode::LowLatency,
            ModeArg::Quality => LatencyMode::Quality,
        }
    }
}

struct StyleOptions {
    mode: LatencyMode,
    mix: f32,
    block: usize,
    dirs: Vec<PathBuf>,
}

fn style(
    input: &Path,
    output: &Path,
    choice: &StyleChoice,
    settings: StyleSettings,
    options: &StyleOptions,
) -> Result<()> {
    let StyleOptions {
        mode, mix, block, ..
    } = *options;
    // The style settings and --mix were range-checked by their argument parsers.
    if !(1..=65_536).contains(&block) {
        bail!("--block must be between 1 and 65536, got {block}");
    }
    let audio = wav::read(input)?;
    if audio.channels.len() > 2 {
        bail!(
            "{}: has {} channels; Continuo Style takes mono or stereo",
            input.display(),
            audio.channels.len()
        );
    }
    if audio.non_finite_samples > 0 {
        eprintln!(
            "warning: {}: {} NaN/Inf samples replaced by silence",
            input.display(),
            audio.non_finite_samples
        );
    }
    let sample_rate = audio.sample_rate as f32;
    let channels = audio.channels.len();
    let config = EngineConfig {
        sample_rate,
        channels,
        max_block_size: block,
    };
    let shared = Arc::new(SharedStyleSettings::default());
    shared.store(&settings);
    let status = Arc::new(StyleStatus::default());
    let mut voice = load_voice(
        choice,
        &model_dirs(&options.dirs),
        BackendChoice::Auto,
        mode,
        shared,
        status.clone(),
    )?;
    // The plugin plays A alone when B is refused; asked for a morph, the CLI refuses instead.
    if let Some(refusal) = voice.take_style_b_refusal() {
        let b = choice.b.as_deref().unwrap_or_default();
        return Err(anyhow::Error::new(refusal).context(format!("style B `{b}` refused")));
    }
    let (a, b) = voice.style_names();
    let processor = StyleProcessor::new(sample_rate, channels, mode, Some(voice))
        .with_context(|| format!("{}: cannot restyle at {sample_rate} Hz", input.display()))?;
    let (mut engine, _worker) =
        audio::start(config, processor).context("starting the engine's worker")?;
    let rendered = offline::render(
        &mut engine,
        &audio.channels,
        block,
        MixGain {
            mix,
            ..MixGain::WET
        },
    );
    wav::write(output, &rendered, audio.spec)?;
    // Written for inspection, but not what was asked: exit non-zero.
    let late = engine.stats().late_blocks.load(Ordering::Relaxed);
    if late > 0 {
        bail!(
            "{}: the worker fell behind in {late} blocks; those stretches are dry",
            output.display()
        );
    }
    let model_errors = status.model_errors.load(Ordering::Relaxed);
    if model_errors > 0 {
        bail!(
            "{}: {model_errors} model calls failed; {}",
            output.display(),
            status.message()
        );
    }
    let styles = match b {
        Some(b) => format!("{a} → {b} at {:.2}", settings.morph),
        None => a,
    };
    println!(
        "wrote {} ({} frames, {} ch, {} Hz; style {styles}; {mode:?} mode, latency {} samples = {:.1} ms, compensated)",
        output.display(),
        audio.frames(),
        channels,
        audio.sample_rate,
        engine.latency_samples(),
        1000.0 * engine.latency_samples() as f32 / sample_rate
    );
    Ok(())
}

fn render(
    input: &Path,
    output: &Path,
    choice: &StyleChoice,
    settings: VoiceSettings,
    rate: u32,
    block: usize,
    dirs: &[PathBuf],
) -> Result<()> {
    if !(1..=65_536).contains(&block) {
        bail!("--block must be between 1 and 65536, got {block}");
    }
    if !(8_000..=384_000).contains(&rate) {
        bail!("--rate must be between 8000 and 384000 Hz, got {rate}");
    }
    let song = continuo::midi::read(input)?;
    let notes = notes_from_song(&song, rate)?;
    let status = Arc::new(StyleStatus::default());
    let (bank, refused) = load_bank(
        choice,
        &model_dirs(dirs),
        BackendChoice::Auto,
        rate,
        status.clone(),
    )?;
    // The plugin plays A alone when B is refused; asked for a morph, the CLI refuses instead.
    if let Some(refusal) = refused {
        let b = choice.b.as_deref().unwrap_or_default();
        return Err(anyhow::Error::new(refusal).context(format!("style B `{b}` refused")));
    }
    let (a, b) = bank.names();
    let mut engine = InstrumentEngine::start(
        rate,
        1,
        block,
        Some(bank),
        Arc::new(SharedVoiceSettings::new(&settings)),
        status.clone(),
    )
    .context("starting the engine's worker")?;
    // Room for the last release to die away (60 dB over the release time) and a little air.
    let last_end = notes.iter().map(|n| n.end).max().unwrap_or(0);
    let tail = ((settings.release_ms / 1000.0 + 0.25) * rate as f32) as usize;
    let rendered = render_notes(&mut engine, &notes, last_end + tail, block, 1);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    wav::write(output, &rendered, spec)?;
    let late = engine.engine_stats().late_blocks.load(Ordering::Relaxed);
    if late > 0 {
        bail!(
            "{}: the worker fell behind in {late} blocks; those stretches are silent",
            output.display()
        );
    }
    let model_errors = status.model_errors.load(Ordering::Relaxed);
    if model_errors > 0 {
        bail!(
            "{}: {model_errors} model calls failed; {}",
            output.display(),
            status.message()
        );
    }
    let stats = engine.stats();
    let outside = stats.notes_outside_range.load(Ordering::Relaxed);
    if outside > 0 {
        eprintln!(
            "note: {outside} notes lie outside {a}'s trained f0 range; they keep their pitch with the timbre of the range's edge"
        );
    }
    let styles = match b {
        Some(b) => format!("{a} → {b} at {:.2}", settings.style.morph),
        None => a,
    };
    println!(
        "wrote {} ({} notes, {:.1} s at {rate} Hz; style {styles}; {} voices stolen)",
        output.display(),
        notes.len(),
        rendered[0].len() as f32 / rate as f32,
        stats.voices_stolen.load(Ordering::Relaxed),
    );
    Ok(())
}

fn analyze(input: &Path, json: bool, hop: usize) -> Result<()> {
    let audio = wav::read(input)?;
    let mono = audio.mono();
    let config = AnalysisConfig {
        hop_size: hop,
        ..AnalysisConfig::default()
    };
    let analysis = analyze_signal(&mono, audio.sample_rate as f32, &config)
        .with_context(|| format!("{}: cannot analyse", input.display()))?;
    let text = if json {
        serde_json::to_string_pretty(&analysis).context("encoding JSON")? + "\n"
    } else {
        analysis.to_string()
    };
    write_stdout(&text)
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TranscribeMethod {
    Tracker,
    OnsetMedian,
}

fn transcribe(
    input: &Path,
    output: &Path,
    tempo_bpm: f64,
    method: TranscribeMethod,
    as_live: bool,
) -> Result<()> {
    if !(MIN_TEMPO_BPM..=MAX_TEMPO_BPM).contains(&tempo_bpm) {
        bail!("--tempo {tempo_bpm}: must be between {MIN_TEMPO_BPM} and {MAX_TEMPO_BPM} BPM");
    }
    let audio = wav::read(input)?;
    let mono = audio.mono();
    let config = NoteTrackerConfig::new(audio.sample_rate as f32);
    let found = match method {
        TranscribeMethod::Tracker => notes::transcribe(&mono, config),
        TranscribeMethod::OnsetMedian => notes::transcribe_onset_median(&mono, config),
    }
    .with_context(|| format!("{}: cannot transcribe", input.display()))?;
    let beats_per_second = tempo_bpm / 60.0;
    let midi_notes: Vec<continuo::midi::Note> = found
        .iter()
        .map(|note| {
            let start_s = if as_live {
                note.decided_s
            } else {
                note.start_s
            };
            let start_beat = start_s * beats_per_second;
            // A note always ends after it starts (a live note-on can come after the estimated
            // end of a very short note; it then lasts a tick).
            let end_beat = (note.end_s * beats_per_second).max(start_beat + 1.0 / 960.0);
            continuo::midi::Note::new(
                note.pitch,
                continuo::midi::Note::velocity_from_unit(note.velocity),
                0,
                start_beat,
                end_beat,
            )
        })
        .collect();
    continuo::midi::file::write(output, &midi_notes, tempo_bpm, 960)?;
    let seconds = audio.frames() as f64 / f64::from(audio.sample_rate);
    eprintln!(
        "{}: {} notes in {seconds:.1} s of audio → {}",
        input.display(),
        midi_notes.len(),
        output.display()
    );
    if midi_notes.is_empty() {
        eprintln!("(no notes found: is the recording silent, noisy or polyphonic?)");
    }
    Ok(())
}

/// Writes to stdout; a reader that went away (`continuo analyze x.wav | head`) is not an error.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

/// Tempi a continuation is generated for; beyond them a file is almost surely broken.
const MIN_TEMPO_BPM: f64 = 20.0;
const MAX_TEMPO_BPM: f64 = 400.0;

struct ContinueOptions {
    variations: u32,
    seed: u64,
    model: String,
    track: Option<usize>,
    key_lock: bool,
}

fn continue_phrase(
    input: &Path,
    output: &Path,
    mut settings: GenerationSettings,
    options: &ContinueOptions,
) -> Result<()> {
    if !(settings.temperature > 0.0 && settings.temperature <= 10.0) {
        bail!(
            "--temperature must be in (0, 10], got {}",
            settings.temperature
        );
    }
    if !(settings.top_p > 0.0 && settings.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {}", settings.top_p);
    }
    if !(1..=64).contains(&settings.bars) || !(1..=16).contains(&options.variations) {
        bail!("--bars must be 1–64 and --variations 1–16");
    }
    let song = continuo::midi::read(input)?;
    let notes = song.melodic_notes(options.track)?;
    let (numerator, denominator) = song.time_signature;
    settings.beats_per_bar = f64::from(numerator) * 4.0 / f64::from(denominator.max(1));
    if options.key_lock {
        let key = continuo::midi::detect_key(&notes).with_context(|| {
            format!("{}: no key can be detected for --key-lock", input.display())
        })?;
        settings.scale = Some(key.scale());
    }
    let (mut models, missing) =
        ModelSet::load(&options.model, &model_dirs(&[]), BackendChoice::Auto)?;
    if let Some(missing) = missing {
        eprintln!("warning: {missing}; the other model continues every texture");
    }
    let texture = settings.texture.resolve(&notes);
    settings.texture = texture.into();
    let model = models
        .for_texture(texture)
        .context("no continuation model is loaded")?;
    let last_end = notes.iter().map(|n| n.end_beat).fold(0.0, f64::max);
    // Continue at the first bar line at or after the input's last note-off.
    let start_beat = (last_end / settings.beats_per_bar - 1e-9).ceil() * settings.beats_per_bar;
    let tempo_bpm = song.tempo_map.bpm_at(start_beat);
    if !(MIN_TEMPO_BPM..=MAX_TEMPO_BPM).contains(&tempo_bpm) {
        bail!(
            "{}: tempo {tempo_bpm:.1} BPM at the continuation point is outside {MIN_TEMPO_BPM}–{MAX_TEMPO_BPM} BPM",
            input.display()
        );
    }
    // The input keeps its tempo changes; the continuation goes on at the tempo in force where
    // it starts.
    let tempo_map = song.tempo_map.until(start_beat);
    let mut rng = Rng::new(options.seed);
    for variation in 1..=options.variations {
        let mut all = notes.clone();
        let stats = generate(model, &notes, start_beat, &settings, &mut rng, |note| {
            all.push(note)
        })?;
        let path = if options.variations == 1 {
            output.to_path_buf()
        } else {
            numbered(output, variation)
        };
        continuo::midi::write_with_tempo_map(
            &path,
            &all,
            &tempo_map,
            song.time_signature,
            song.ticks_per_beat.max(96),
        )?;
        println!(
            "wrote {} ({} notes continued as {texture} over {} bars from beat {start_beat}, {} tokens; model {}; seed {})",
            path.display(),
            stats.notes,
            settings.bars,
            stats.tokens,
            model.path().display(),
            options.seed
        );
    }
    Ok(())
}

/// `out.mid` → `out-2.mid`.
fn numbered(path: &Path, number: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("continuation".into(), |s| s.to_string_lossy().into_owned());
    let extension = path
        .extension()
        .map_or("mid".into(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-{number}.{extension}"))
}

/// Model directories: `--dir`s, then (in a build from the repository) its `models/`, then the
/// standard places (beside the binary, the user's data directory).
fn model_dirs(extra: &[PathBuf]) -> ModelDirs {
    let mut explicit = extra.to_vec();
    explicit.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    ModelDirs::standard(&explicit)
}

/// Where ONNX Runtime is looked for: `ORT_DYLIB_PATH`, beside the binary, and (in a build from
/// the repository) where `cargo xtask` fetched it.
fn runtime_search() -> RuntimeSearch {
    RuntimeSearch {
        dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnxruntime")],
        ..RuntimeSearch::default()
    }
}

fn models(extra_dirs: &[PathBuf]) {
    println!(
        "inference backend: {}",
        describe_auto_backend(&runtime_search())
    );
    let dirs = model_dirs(extra_dirs);
    let found = scan(&dirs);
    if found.is_empty() {
        println!("no models found in:");
        for dir in &dirs.dirs {
            println!("  {}", dir.display());
        }
    }
    for model in found {
        match model.result {
            Ok(manifest) => {
                println!(
                    "ok       {} ({:?}, {} parameters{}{}) {}",
                    manifest.name,
                    manifest.kind,
                    manifest.parameter_count,
                    // What a musician hears most directly of a timbre model: how high it reaches,
                    manifest.synth.as_ref().map_or(String::new(), |s| format!(
                        ", band 0–{:.1} kHz",
                        s.max_hz / 1000.0
                    )),
                    // and how low it is tracked (which sets Style's latency).
                    manifest
                        .features
                        .as_ref()
                        .filter(|_| manifest.synth.is_some())
                        .map_or(String::new(), |f| format!(", f0 from {} Hz", f.f0_min_hz)),
                    model.path.display()
                );
                if let Some(description) = &manifest.description {
                    println!("         {description}");
                }
            }
            Err(error) => println!(
                "invalid  {}\n         {}",
                model.path.display(),
                continuo::model::chain_message(&error)
            ),
        }
    }
}

fn info() {
    println!("continuo {}", env!("CARGO_PKG_VERSION"));
    println!("plugins: Continuo Style (org.continuo.style), Continuo Phrase (org.continuo.phrase), Continuo Voice (org.continuo.voice); CLAP and VST3");
    println!(
        "audio files: WAV, mono or stereo, 8/16/24/32-bit integer or 32-bit float, any sample rate"
    );
    println!("MIDI files: standard MIDI files, type 0 and 1");
    println!("models are looked up in:");
    for dir in model_dirs(&[]).dirs {
        println!("  {}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Each style argument takes exactly its plugin parameter's range and defaults to the
    /// parameter's default (`--amount` excepted: see its definition).
    #[test]
    fn style_arguments_take_the_plugin_ranges() {
        let parses = |flag: &str, value: f32| {
            Cli::command()
                .try_get_matches_from([
                    "continuo",
                    "style",
                    "in.wav",
                    "-o",
                    "out.wav",
                    "--morph",
                    "b",
                    &format!("--{flag}={value}"),
                ])
                .is_ok()
        };
        for (flag, spec) in [
            ("amount", MORPH),
            ("pitch-shift", PITCH_SHIFT),
            ("octave", OCTAVE),
            ("input-gain", INPUT_GAIN),
            ("gate", GATE),
            ("balance", BALANCE),
            ("brightness", BRIGHTNESS),
            ("mix", MIX),
        ] {
            assert!(parses(flag, spec.min) && parses(flag, spec.max), "{flag}");
            assert!(!parses(flag, spec.min - 1.0), "--{flag} below {}", spec.min);
            assert!(!parses(flag, spec.max + 1.0), "--{flag} above {}", spec.max);
        }
        let cli = Cli::try_parse_from(["continuo", "style", "in.wav", "-o", "out.wav"])
            .expect("the defaults parse");
        let Command::Style {
            pitch_shift,
            octave,
            input_gain,
            gate,
            balance,
            brightness,
            mix,
            no_auto_level,
            ..
        } = cli.command
        else {
            panic!("not the style command");
        };
        assert_eq!(pitch_shift, PITCH_SHIFT.default);
        assert_eq!(octave as f32, OCTAVE.default);
        assert_eq!(input_gain, INPUT_GAIN.default);
        assert_eq!(gate, GATE.default);
        assert_eq!(balance, BALANCE.default);
        assert_eq!(brightness, BRIGHTNESS.default);
        assert_eq!(mix, MIX.default);
        assert_eq!(!no_auto_level, StyleSettings::default().auto_level);
    }
}
