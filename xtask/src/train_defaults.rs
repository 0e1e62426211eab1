//! `cargo xtask train-defaults`: reproduces the default models in `models/` from nothing.
//!
//! Every recipe here is the one recorded in the shipped reports (`models/*.report.md`): same
//! data scripts and settings, same trainer flags and seeds. Change them together or not at all.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::{fetch_onnxruntime, run, workspace_root, ORT_VERSION};
use crate::system::on_path;

const USAGE: &str = "\
cargo xtask train-defaults [OPTIONS]

Reproduces Continuo's default models (models/continuo-chorales, continuo-folk, each with a
Transformer beside it, and the timbre models continuo-violin, continuo-flute, continuo-cello,
continuo-trumpet and continuo-clarinet) from nothing, with the flags and seeds recorded in
their reports:

  1. system packages, only if missing: fluidsynth, fluid-soundfont-gm (FluidR3_GM.sf2),
     python3-venv (apt-get install --no-install-recommends; through sudo when not root)
  2. a Python venv target/venv-data with music21==10.5.1 (pip)
  3. data in DATA: the Bach chorales and Ryan's Mammoth Collection (fiddle tunes) of
     music21's corpus as MIDI (DATA/chorales, DATA/folk; xtask/scripts/corpus_to_midi.py)
     and 84 chorale melodies rendered by fluidsynth as violin, flute, cello (an octave
     down), trumpet and clarinet, sample-aligned, 48 kHz, each normalised to -30 dBFS (gated
     RMS) (DATA/timbre/<instrument>/{train,heldout}, DATA/timbre/pairs/{flute-to-violin,
     violin-to-flute,flute-to-cello,violin-to-trumpet,flute-to-clarinet};
     xtask/scripts/render_pairs.py)
  4. ONNX Runtime 1.31.1 (PyPI wheel) into target/onnxruntime, so that every export is
     verified on ONNX Runtime as well as tract
  5. cargo build --features train --bin continuo-train (dev profile, as the tests use)
  6. per model: continuo-train continuation|timbre, then continuo-train eval on the held-out
     MIDI (chorales, folk) or the paired renders at 48 kHz (timbre models, the cello with
     Style's Octave at -1; each paired evaluation is appended to OUT/NAME.report.md); for chorales and folk also the same
     recipe with --arch transformer (OUT/NAME-transformer) and continuo-train compare of the
     two, written into both reports; the training checkpoints are removed afterwards

Writes OUT/NAME.onnx, .json, .report.md and .loss.png for each model. About 8 hours on
2 cores (data ~20 min, chorales ~18 min and its Transformer ~20 min, folk
~22 min and its Transformer ~26 min, each of the five timbre models up to 60 min and
its evaluations ~10 min), plus 10-20 min for a cold trainer build.

Options:
  --only MODEL[,MODEL]  chorales, folk, violin, flute, cello, trumpet, clarinet
                        (repeatable; default: all seven)
  --data DIR            data directory (default: target/data)
  --out DIR             model directory (default: models)
  --skip-data           reuse the data already in DATA: no packages, venv or rendering
  --data-only           stop after the data (steps 1-3)
  --dry-run             print the steps and commands without running anything
  -h, --help            this text

DATA is only ever cleared when this command created it (it leaves a .train-defaults marker
there); a non-empty DATA/chorales, DATA/folk or DATA/timbre it did not write is an error unless
--skip-data is given.

Note: the timbre trainer stops at its 60-minute budget (--max-minutes 60, as shipped), and the
shipped full-band models reached it before their 3000 steps (their reports give the step
count): a faster or slower machine trains them for more or fewer steps. Everything else is
fixed by seeds and step counts.
";

/// The corpus and MIDI writer of this music21 release decide the data, hence the models.
const MUSIC21: &str = "music21==10.5.1";
const SOUNDFONT: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
/// `render_pairs.py` settings of the shipped timbre data: 84 chorales, every 6th held out,
/// i.e. 70 training + 14 held-out files per instrument.
const RENDER_SETTINGS: [&str; 8] = [
    "--count",
    "84",
    "--heldout-every",
    "6",
    "--seed",
    "2026",
    "--sample-rate",
    "48000",
];
/// Host rates the timbre models are evaluated at here (one report table per rate). 44.1 kHz
/// needs pairs rendered at 44.1 kHz (a resampled target loses its top band to the resampler's
/// filter while the model's output keeps it); the reports give that command separately.
const EVAL_RATES: [&str; 1] = ["48000"];
/// Marks a data directory as written by this command (so it may clear it on the next run).
const MARKER: &str = ".train-defaults";
const VENV: &str = "target/venv-data";
/// The continuation models' cards (`--description`), as shown by `continuo models` and Phrase.
const CHORALES_CARD: &str = "Bach chorales in four parts (music21's corpus, 383 training files): \
                             continues chords as chords";
const FOLK_CARD: &str = "Fiddle and folk tunes, one line each (Ryan's Mammoth Collection, \
                         1883; 886 training tunes): continues melodies";
/// The same data's Transformer (`--arch transformer`), shipped beside each GRU; `continuo-train
/// compare` puts the two side by side in both reports.
const CHORALES_TRANSFORMER_CARD: &str = "Bach chorales in four parts (music21's corpus, 383 \
                                         training files), Transformer: continues chords as chords";
const FOLK_TRANSFORMER_CARD: &str = "Fiddle and folk tunes, one line each (Ryan's Mammoth \
                                     Collection, 1883; 886 training tunes), Transformer: \
                                     continues melodies";
/// Epochs of the shipped melody model, and the tunes it came from.
const FOLK_EPOCHS: &str = "8";
const FOLK_FILES: usize = 985;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Model {
    Chorales,
    Folk,
    Violin,
    Flute,
    Cello,
    Trumpet,
    Clarinet,
}

impl Model {
    /// Every shipped model, in training order (all of them unless `--only` is given).
    const ALL: [Model; 7] = [
        Model::Chorales,
        Model::Folk,
        Model::Violin,
        Model::Flute,
        Model::Cello,
        Model::Trumpet,
        Model::Clarinet,
    ];

    fn key(self) -> &'static str {
        match self {
            Model::Chorales => "chorales",
            Model::Folk => "folk",
            Model::Violin => "violin",
            Model::Flute => "flute",
            Model::Cello => "cello",
            Model::Trumpet => "trumpet",
            Model::Clarinet => "clarinet",
        }
    }

    fn name(self) -> String {
        format!("continuo-{}", self.key())
    }

    /// The Transformer trained on the same data as a continuation model.
    fn transformer_name(self) -> Option<String> {
        (!self.is_timbre()).then(|| format!("{}-transformer", self.name()))
    }

    fn is_timbre(self) -> bool {
        !matches!(self, Model::Chorales | Model::Folk)
    }

    /// The paired renders the timbre model is evaluated on (`source/` → `target/`).
    fn pairs(self) -> &'static str {
        match self {
            Model::Chorales | Model::Folk => {
                unreachable!("continuation models have no paired data")
            }
            Model::Violin => "flute-to-violin",
            Model::Flute => "violin-to-flute",
            Model::Cello => "flute-to-cello",
            Model::Trumpet => "violin-to-trumpet",
            Model::Clarinet => "flute-to-clarinet",
        }
    }

    /// Style's Octave in the paired evaluation: the cello plays the melodies an octave below
    /// the flute (`render_pairs.py`), as a flautist restyling to cello would set it.
    fn pair_octave(self) -> i32 {
        match self {
            Model::Cello => -1,
            _ => 0,
        }
    }
}

struct Options {
    only: Vec<Model>,
    data: PathBuf,
    out: PathBuf,
    skip_data: bool,
    data_only: bool,
    dry_run: bool,
}

/// Parses the arguments; `None` means `--help` was asked for.
fn parse(args: &[String]) -> Result<Option<Options>> {
    let mut options = Options {
        only: Vec::new(),
        data: PathBuf::from("target/data"),
        out: PathBuf::from("models"),
        skip_data: false,
        data_only: false,
        dry_run: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone().or_else(|| args.next().cloned()) {
                Some(value) if !value.is_empty() => Ok(value),
                _ => bail!("{name} needs a value (see `cargo xtask train-defaults --help`)"),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "--only" => {
                for key in value("--only")?.split(',').map(str::trim) {
                    let model = Model::ALL
                        .into_iter()
                        .find(|m| m.key() == key || m.name() == key)
                        .with_context(|| {
                            format!(
                                "--only: unknown model `{key}` (chorales, folk, violin, flute, \
                                 cello, trumpet or clarinet)"
                            )
                        })?;
                    if !options.only.contains(&model) {
                        options.only.push(model);
                    }
                }
            }
            "--data" => options.data = PathBuf::from(value("--data")?),
            "--out" => options.out = PathBuf::from(value("--out")?),
            "--skip-data" => options.skip_data = true,
            "--data-only" => options.data_only = true,
            "--dry-run" => options.dry_run = true,
            _ => bail!("unknown argument `{arg}` (see `cargo xtask train-defaults --help`)"),
        }
    }
    if options.skip_data && options.data_only {
        bail!("--skip-data and --data-only together leave nothing to do");
    }
    if options.only.is_empty() {
        options.only = Model::ALL.to_vec();
    }
    // Train in a fixed order whatever the order on the command line.
    options
        .only
        .sort_by_key(|m| Model::ALL.iter().position(|a| a == m));
    Ok(Some(options))
}

/// Runs commands and changes files, or in a dry run only says what it would do.
struct Ctx {
    dry_run: bool,
}

impl Ctx {
    fn run(&self, command: &mut Command) -> Result<()> {
        if self.dry_run {
            println!("  would run: {command:?}");
            return Ok(());
        }
        run(command)
    }

    /// Runs `command` with its standard output captured (and echoed); stderr passes through.
    fn output(&self, command: &mut Command) -> Result<String> {
        if self.dry_run {
            println!("  would run: {command:?}");
            return Ok(String::new());
        }
        eprintln!("+ {command:?}");
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start {command:?}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        print!("{stdout}");
        if !output.status.success() {
            bail!("{command:?} failed ({})", output.status);
        }
        Ok(stdout)
    }

    fn remove_dir(&self, dir: &Path) -> Result<()> {
        if self.dry_run {
            println!("  would remove {}", dir.display());
            return Ok(());
        }
        println!("removing {}", dir.display());
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
    }

    fn create_dir(&self, dir: &Path) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
    }

    fn write(&self, path: &Path, text: &str) -> Result<()> {
        if self.dry_run {
            println!("  would write {}", path.display());
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

type Step<'a> = (String, Box<dyn FnOnce() -> Result<()> + 'a>);

pub fn main(args: &[String]) -> Result<()> {
    let invoked_from = std::env::current_dir().context("current directory")?;
    let Some(options) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    // Also makes the root the working directory. Paths on the command line are relative to
    // where the command was typed; inside the project they are passed on (and so appear in
    // the reports) relative to its root.
    let root = workspace_root()?;
    let local = |path: &Path| -> PathBuf {
        let absolute = invoked_from.join(path);
        match absolute.strip_prefix(&root) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.to_path_buf(),
            _ => absolute,
        }
    };
    let (data, out) = (local(&options.data), local(&options.out));
    let (data, out) = (data.as_path(), out.as_path());
    // Filled in by the ONNX Runtime and build steps, read by the training steps.
    let ort = std::cell::OnceCell::<PathBuf>::new();
    let trainer = std::cell::OnceCell::<PathBuf>::new();
    let (ort, trainer, root) = (&ort, &trainer, root.as_path());
    let models = &options.only;
    let ctx = Ctx {
        dry_run: options.dry_run,
    };
    let ctx = &ctx;
    let corpora: Vec<&'static str> = models
        .iter()
        .filter(|m| !m.is_timbre())
        .map(|m| m.key())
        .collect();
    let timbre = models.iter().any(|m| m.is_timbre());
    let python = PathBuf::from(VENV).join("bin/python");

    let mut steps: Vec<Step> = Vec::new();
    if options.skip_data {
        let models = models.clone();
        steps.push((
            format!("check the existing data in {}", data.display()),
            Box::new(move || check_data(data, &models)),
        ));
    } else {
        steps.push((
            "system packages (fluidsynth, fluid-soundfont-gm, python3-venv)".into(),
            Box::new(move || system_packages(ctx, timbre)),
        ));
        let python = &python;
        steps.push((
            format!("Python venv {VENV} with {MUSIC21}"),
            Box::new(move || data_venv(ctx, python)),
        ));
        for collection in corpora {
            let dir = data.join(collection);
            steps.push((
                format!("export music21's {collection} to MIDI in {}", dir.display()),
                Box::new(move || {
                    clear_data_dir(ctx, data, collection)?;
                    ctx.run(
                        Command::new(python)
                            .arg("xtask/scripts/corpus_to_midi.py")
                            .arg(collection)
                            .arg(&dir),
                    )
                }),
            ));
        }
        if timbre {
            let dir = data.join("timbre");
            steps.push((
                format!("render the paired timbre data in {}", dir.display()),
                Box::new(move || {
                    clear_data_dir(ctx, data, "timbre")?;
                    ctx.run(
                        Command::new(python)
                            .arg("xtask/scripts/render_pairs.py")
                            .arg(&dir)
                            .args(RENDER_SETTINGS),
                    )
                }),
            ));
        }
        if !options.dry_run {
            let models = models.clone();
            steps.push((
                format!("check the data in {}", data.display()),
                Box::new(move || check_data(data, &models)),
            ));
        }
    }

    if !options.data_only {
        steps.push((
            format!("ONNX Runtime {ORT_VERSION} in target/onnxruntime"),
            Box::new(move || {
                let library = if ctx.dry_run {
                    let library = root.join(format!(
                        "target/onnxruntime/libonnxruntime.so.{ORT_VERSION}"
                    ));
                    if !library.exists() {
                        println!("  would fetch {} (xtask/fetch-ort.sh)", library.display());
                    }
                    library
                } else {
                    fetch_onnxruntime(root)?
                };
                let _ = ort.set(library);
                Ok(())
            }),
        ));
        steps.push((
            "build continuo-train (dev profile, feature train)".into(),
            Box::new(move || {
                ctx.run(Command::new(env!("CARGO")).args([
                    "build",
                    "--features",
                    "train",
                    "--bin",
                    "continuo-train",
                ]))?;
                let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                    .map(|dir| root.join(dir))
                    .unwrap_or_else(|| root.join("target"));
                let binary = target_dir.join("debug/continuo-train");
                if !ctx.dry_run && !binary.exists() {
                    bail!("the build finished but {} is missing", binary.display());
                }
                let _ = trainer.set(binary);
                Ok(())
            }),
        ));
        let trainer_command = move || -> Result<Command> {
            let mut command = Command::new(trainer.get().context("continuo-train not built")?);
            command.env("ORT_DYLIB_PATH", ort.get().context("no ONNX Runtime")?);
            Ok(command)
        };
        for &model in models {
            let name = model.name();
            let base = out.join(&name);
            let transformer = model.transformer_name().map(|name| out.join(name));
            {
                let base = base.clone();
                steps.push((
                    format!("train {name}"),
                    Box::new(move || {
                        ctx.create_dir(out)?;
                        ctx.run(trainer_command()?.args(train_args(model, data, &base)))
                    }),
                ));
            }
            if let Some(transformer) = transformer.clone() {
                steps.push((
                    format!("train {}", model.transformer_name().unwrap_or_default()),
                    Box::new(move || {
                        ctx.run(trainer_command()?.args(transformer_train_args(
                            model,
                            data,
                            &transformer,
                        )))
                    }),
                ));
            }
            steps.push((
                format!("evaluate {name}"),
                Box::new(move || {
                    for args in eval_args(model, data, &base) {
                        let printed = ctx.output(trainer_command()?.args(&args))?;
                        if model.is_timbre() {
                            append_paired_eval(ctx, &base, &args, &printed)?;
                        }
                    }
                    if let Some(transformer) = &transformer {
                        ctx.run(trainer_command()?.args(compare_args(
                            model,
                            data,
                            &base,
                            transformer,
                        )))?;
                    }
                    for model_base in std::iter::once(&base).chain(&transformer) {
                        let checkpoint = with_suffix(model_base, ".ckpt");
                        if checkpoint.exists() {
                            ctx.remove_dir(&checkpoint)?;
                        }
                    }
                    Ok(())
                }),
            ));
        }
    }

    let total = steps.len();
    for (index, (label, step)) in steps.into_iter().enumerate() {
        let number = index + 1;
        println!("\n==> [{number}/{total}] {label}");
        step().with_context(|| format!("train-defaults: step {number}/{total} failed: {label}"))?;
    }

    println!();
    if options.dry_run {
        println!("Dry run: nothing was installed, written or trained.");
    } else if options.data_only {
        println!(
            "Data ready in {}; train with `cargo xtask train-defaults --skip-data{}`.",
            data.display(),
            if options.data == Path::new("target/data") {
                String::new()
            } else {
                format!(" --data {}", options.data.display())
            }
        );
    } else {
        for name in models
            .iter()
            .flat_map(|m| std::iter::once(m.name()).chain(m.transformer_name()))
        {
            let base = out.join(&name);
            println!(
                "{name}: {}",
                [".onnx", ".json", ".report.md", ".loss.png"]
                    .map(|suffix| with_suffix(&base, suffix).display().to_string())
                    .join(", ")
            );
        }
        println!(
            "Compare with the shipped models: git diff --stat -- {}",
            out.display()
        );
    }
    Ok(())
}

/// `continuo-train` arguments that trained the shipped model (see its report).
fn train_args(model: Model, data: &Path, base: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    match model {
        Model::Chorales => {
            args.push("continuation".into());
            args.push(data.join("chorales").into());
            args.push("--out".into());
            args.push(base.into());
            // The trainer's defaults, spelled out: the recipe must not drift with them.
            args.extend(["--epochs", "13", "--seed", "42"].map(OsString::from));
            args.extend(["--description", CHORALES_CARD].map(OsString::from));
            // The report verifies the export on ONNX Runtime too: fail rather than skip it.
            args.push("--require-ort".into());
        }
        Model::Folk => {
            args.push("continuation".into());
            args.push(data.join("folk").into());
            args.push("--out".into());
            args.push(base.into());
            // Fiddle tunes sit in a few keys (G, D, A): transposing by up to a tritone lets
            // the model answer a tune in any key.
            args.extend(
                ["--epochs", FOLK_EPOCHS, "--seed", "42", "--transpose", "6"].map(OsString::from),
            );
            args.extend(["--description", FOLK_CARD].map(OsString::from));
            args.push("--require-ort".into());
        }
        _ => {
            args.push("timbre".into());
            args.push(data.join("timbre").join(model.key()).join("train").into());
            args.push("--out".into());
            args.push(base.into());
            args.extend(["--steps", "3000", "--seed", "42"].map(OsString::from));
            // Full band: synthesised at 48 kHz in training (see the reports).
            args.extend(
                [
                    "--max-minutes",
                    "60",
                    "--synth-rate",
                    "48000",
                    "--harmonics",
                    "48",
                    "--noise-bands",
                    "64",
                    "--mel-noise-bands",
                ]
                .map(OsString::from),
            );
            // Each instrument tracked from below its lowest note, since the floor sets Style's
            // look-ahead: the cello's melodies reach E2 (82 Hz) and the instrument C2 (65 Hz),
            // so 64 Hz (one 4 ms frame more than the default 100 Hz); the others never go below
            // D3 (147 Hz), so 130 Hz (one frame less: 19.7 ms at 48 kHz).
            let f0_floor = match model {
                Model::Cello => Some("64"),
                Model::Violin | Model::Flute | Model::Trumpet | Model::Clarinet => Some("130"),
                _ => None,
            };
            if let Some(floor) = f0_floor {
                args.extend(["--f0-min-hz", floor].map(OsString::from));
            }
            // Wind partials fade early: started flat, their decoders silenced the harmonics and
            // played the notes with noise (models/README.md). The violin trains better from it
            // too; the cello was trained from the flat start before this was known.
            if model != Model::Cello {
                args.extend(["--harmonic-rolloff", "12"].map(OsString::from));
            }
        }
    }
    args
}

/// The Transformer on a continuation model's data: the same recipe (data, epochs, seed,
/// transposition) with `--arch transformer` and its own card.
fn transformer_train_args(model: Model, data: &Path, base: &Path) -> Vec<OsString> {
    let card = match model {
        Model::Chorales => CHORALES_TRANSFORMER_CARD,
        Model::Folk => FOLK_TRANSFORMER_CARD,
        _ => unreachable!("timbre models have no Transformer"),
    };
    let mut args = train_args(model, data, base);
    if let Some(at) = args.iter().position(|a| a == "--description") {
        args[at + 1] = card.into();
    }
    args.extend(["--arch", "transformer"].map(OsString::from));
    args
}

/// `continuo-train compare` of a dataset's GRU and Transformer, written into both reports.
fn compare_args(model: Model, data: &Path, gru: &Path, transformer: &Path) -> Vec<OsString> {
    vec![
        "compare".into(),
        data.join(model.key()).into(),
        gru.into(),
        transformer.into(),
        "--write-reports".into(),
    ]
}

/// `continuo-train eval` invocations: held-out MIDI (continuation), or paired renders and the
/// held-out melodies played as Continuo Voice (`eval-voice`) at each of [`EVAL_RATES`]
/// (timbre).
fn eval_args(model: Model, data: &Path, base: &Path) -> Vec<Vec<OsString>> {
    match model {
        Model::Chorales | Model::Folk => vec![vec![
            "eval".into(),
            base.into(),
            data.join(model.key()).into(),
        ]],
        _ => EVAL_RATES
            .iter()
            .flat_map(|rate| {
                let timbre = data.join("timbre");
                let paired = |extra: &[&str]| -> Vec<OsString> {
                    let mut args: Vec<OsString> = vec![
                        "eval".into(),
                        with_suffix(base, ".json").into(),
                        timbre.join("pairs").join(model.pairs()).into(),
                        "--rate".into(),
                        (*rate).into(),
                    ];
                    if model.pair_octave() != 0 {
                        args.push("--octave".into());
                        args.push(model.pair_octave().to_string().into());
                    }
                    args.extend(extra.iter().map(OsString::from));
                    args
                };
                [
                    paired(&[]),
                    // Does the transfer depend on how loud the player records? With Auto Level
                    // (the default) and, for comparison, without.
                    paired(&["--input-db", "-42"]),
                    paired(&["--input-db", "-24"]),
                    paired(&["--input-db", "-42", "--no-auto-level"]),
                    // The model played as Continuo Voice on the held-out melodies.
                    vec![
                        "eval-voice".into(),
                        with_suffix(base, ".json").into(),
                        timbre.join("midi").join(model.key()).join("heldout").into(),
                        timbre.join(model.key()).join("heldout").into(),
                        "--rate".into(),
                        (*rate).into(),
                    ],
                ]
            })
            .collect(),
    }
}

/// Appends the evaluation printed by `continuo-train eval` or `eval-voice` to the model's
/// report, as in the shipped reports (unless it is there already).
fn append_paired_eval(ctx: &Ctx, base: &Path, args: &[OsString], printed: &str) -> Result<()> {
    let report = with_suffix(base, ".report.md");
    if ctx.dry_run {
        println!(
            "  would append the paired evaluation to {}",
            report.display()
        );
        return Ok(());
    }
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("reading {}", report.display()))?;
    let command = args
        .iter()
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    if text.contains(&format!("Reproduce: `continuo-train {command}`")) {
        return Ok(());
    }
    let printed = printed.trim();
    if !printed.starts_with("## Paired evaluation") && !printed.starts_with("## Continuo Voice") {
        bail!("unexpected output of `continuo-train {command}` (no evaluation table)");
    }
    let text = format!(
        "{}\n\n\nReproduce: `continuo-train {command}`\n\n{printed}\n",
        text.trim_end()
    );
    std::fs::write(&report, text).with_context(|| format!("writing {}", report.display()))?;
    println!("appended the paired evaluation to {}", report.display());
    Ok(())
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Installs what the data scripts need from Debian, only what is missing.
fn system_packages(ctx: &Ctx, timbre: bool) -> Result<()> {
    let venv_ok = Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("python3 not found: install Python 3 (3.11 on Debian 12)")?
        .success();
    let mut missing = Vec::new();
    if !venv_ok {
        missing.push("python3-venv");
    }
    if timbre {
        if !on_path("fluidsynth") {
            missing.push("fluidsynth");
        }
        if !Path::new(SOUNDFONT).exists() {
            missing.push("fluid-soundfont-gm");
        }
    }
    if missing.is_empty() {
        println!("already installed");
        return Ok(());
    }
    crate::system::apt_install(&missing, &|command| ctx.run(command))
}

/// A venv of its own (not `target/venv`, the VST3 check's) with the pinned music21.
fn data_venv(ctx: &Ctx, python: &Path) -> Result<()> {
    if !python.exists() {
        ctx.run(Command::new("python3").args(["-m", "venv", VENV]))
            .context("creating the venv (on Debian: apt-get install python3-venv)")?;
    }
    let wanted = MUSIC21.split_once("==").map(|(_, v)| v).unwrap_or_default();
    let present = python.exists()
        && Command::new(python)
            .args([
                "-c",
                &format!(
                    "import importlib.metadata as m, sys; \
                     sys.exit(m.version('music21') != '{wanted}')"
                ),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    if present {
        println!("{MUSIC21} already installed");
        return Ok(());
    }
    ctx.run(Command::new(python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MUSIC21,
    ]))
    .context("installing music21 from PyPI")
}

/// Clears `data/sub` if this command wrote it before; refuses to touch anyone else's data.
fn clear_data_dir(ctx: &Ctx, data: &Path, sub: &str) -> Result<()> {
    let dir = data.join(sub);
    let marker = data.join(MARKER);
    let non_empty = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if non_empty {
        if !marker.exists() {
            bail!(
                "{} already holds files that `cargo xtask train-defaults` did not write: pass \
                 --skip-data to train on them, or choose an empty or new --data DIR",
                dir.display()
            );
        }
        // Stale files (e.g. from other script settings) would change the splits: start clean.
        ctx.remove_dir(&dir)?;
    }
    ctx.write(
        &marker,
        "Written by `cargo xtask train-defaults`, which clears and re-creates chorales/, folk/ \
         and timbre/ here on every run without --skip-data.\n",
    )
}

/// The data the selected models train and evaluate on, with the file counts.
fn check_data(data: &Path, models: &[Model]) -> Result<()> {
    let count = |dir: &Path, extension: &str| -> Result<usize> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "{} is missing: run without --skip-data to create the data (layout: \
                 DATA/{{chorales,folk}}/*.mid, DATA/timbre/INSTRUMENT/{{train,heldout}}/*.wav, \
                 DATA/timbre/pairs/SOURCE-to-TARGET/{{source,target}})",
                dir.display()
            )
        })?;
        let n = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().extension().is_some_and(|e| e == extension))
            .count();
        if n == 0 {
            bail!("{} holds no .{extension} files", dir.display());
        }
        Ok(n)
    };
    for &model in models {
        if model.is_timbre() {
            let dir = data.join("timbre").join(model.key());
            let train = count(&dir.join("train"), "wav")?;
            let heldout = count(&dir.join("heldout"), "wav")?;
            let pairs = data.join("timbre/pairs").join(model.pairs());
            let sources = count(&pairs.join("source"), "wav")?;
            let targets = count(&pairs.join("target"), "wav")?;
            println!(
                "{}: {train} training + {heldout} held-out WAVs (shipped: 70 + 14); {}: \
                 {sources} source / {targets} target",
                dir.display(),
                pairs.display()
            );
        } else {
            let dir = data.join(model.key());
            let n = count(&dir, "mid")?;
            let shipped = if model == Model::Folk {
                FOLK_FILES
            } else {
                430
            };
            println!("{}: {n} MIDI files (shipped: {shipped})", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Option<Options>> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn only_accepts_lists_and_repeats_in_a_fixed_order() {
        let options = parsed(&["--only", "flute,chorales", "--only=violin"])
            .unwrap()
            .unwrap();
        assert_eq!(
            options.only,
            vec![Model::Chorales, Model::Violin, Model::Flute]
        );
        assert_eq!(parsed(&[]).unwrap().unwrap().only, Model::ALL.to_vec());
        let options = parsed(&["--only", "clarinet,trumpet"]).unwrap().unwrap();
        assert_eq!(options.only, vec![Model::Trumpet, Model::Clarinet]);
        let options = parsed(&["--only", "continuo-flute"]).unwrap().unwrap();
        assert_eq!(options.only, vec![Model::Flute]);
        assert!(parsed(&["--only", "oboe"]).is_err());
        assert!(parsed(&["--only"]).is_err());
        assert!(parsed(&["--help"]).unwrap().is_none());
        assert!(parsed(&["--frobnicate"]).is_err());
    }

    #[test]
    fn recipes_match_the_shipped_reports() {
        let data = Path::new("DATA");
        let line = |args: Vec<OsString>| {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let full_band = "--steps 3000 --seed 42 --max-minutes 60 --synth-rate 48000 \
                         --harmonics 48 --noise-bands 64 --mel-noise-bands";
        for (model, tail) in [
            (Model::Violin, " --f0-min-hz 130 --harmonic-rolloff 12"),
            (Model::Flute, " --f0-min-hz 130 --harmonic-rolloff 12"),
            (Model::Cello, " --f0-min-hz 64"),
        ] {
            let (key, base) = (model.key(), format!("models/{}", model.name()));
            assert_eq!(
                line(train_args(model, data, Path::new(&base))),
                format!("timbre DATA/timbre/{key}/train --out {base} {full_band}{tail}")
            );
        }
        let evals: Vec<String> = eval_args(Model::Flute, data, Path::new("models/continuo-flute"))
            .into_iter()
            .map(line)
            .collect();
        assert_eq!(
            evals,
            [
                "eval models/continuo-flute.json DATA/timbre/pairs/violin-to-flute --rate 48000",
                "eval models/continuo-flute.json DATA/timbre/pairs/violin-to-flute --rate 48000 \
                 --input-db -42",
                "eval models/continuo-flute.json DATA/timbre/pairs/violin-to-flute --rate 48000 \
                 --input-db -24",
                "eval models/continuo-flute.json DATA/timbre/pairs/violin-to-flute --rate 48000 \
                 --input-db -42 --no-auto-level",
                "eval-voice models/continuo-flute.json DATA/timbre/midi/flute/heldout \
                 DATA/timbre/flute/heldout --rate 48000"
            ]
        );
        assert_eq!(
            line(eval_args(Model::Cello, data, Path::new("models/continuo-cello")).remove(0)),
            "eval models/continuo-cello.json DATA/timbre/pairs/flute-to-cello --rate 48000 \
             --octave -1"
        );
        assert_eq!(
            line(train_args(
                Model::Chorales,
                data,
                Path::new("models/continuo-chorales")
            )),
            format!(
                "continuation DATA/chorales --out models/continuo-chorales --epochs 13 --seed 42 \
                 --description {CHORALES_CARD} --require-ort"
            )
        );
        assert_eq!(
            line(train_args(
                Model::Folk,
                data,
                Path::new("models/continuo-folk")
            )),
            format!(
                "continuation DATA/folk --out models/continuo-folk --epochs {FOLK_EPOCHS} \
                 --seed 42 --transpose 6 --description {FOLK_CARD} --require-ort"
            )
        );
        assert_eq!(
            line(transformer_train_args(
                Model::Folk,
                data,
                Path::new("models/continuo-folk-transformer")
            )),
            format!(
                "continuation DATA/folk --out models/continuo-folk-transformer --epochs \
                 {FOLK_EPOCHS} --seed 42 --transpose 6 --description {FOLK_TRANSFORMER_CARD} \
                 --require-ort --arch transformer"
            )
        );
        assert_eq!(
            line(compare_args(
                Model::Chorales,
                data,
                Path::new("models/continuo-chorales"),
                Path::new("models/continuo-chorales-transformer")
            )),
            "compare DATA/chorales models/continuo-chorales models/continuo-chorales-transformer \
             --write-reports"
        );
    }

    #[test]
    fn paired_evaluation_is_appended_once_per_command_as_in_the_shipped_reports() {
        let dir = std::env::temp_dir().join(format!("xtask-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("continuo-flute");
        let report = with_suffix(&base, ".report.md");
        std::fs::write(&report, "# Timbre model\n\nNegative control: `x`\n\n").unwrap();
        let args: Vec<OsString> = ["eval", "models/continuo-flute.json", "P"]
            .map(OsString::from)
            .to_vec();
        let printed = "## Paired evaluation: `P`\n\n| a |\n\nBars:\n- [x] ok\n\n";
        let ctx = Ctx { dry_run: false };
        append_paired_eval(&ctx, &base, &args, printed).unwrap();
        append_paired_eval(&ctx, &base, &args, printed).unwrap();
        let text = std::fs::read_to_string(&report).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "# Timbre model\n\nNegative control: `x`\n\n\nReproduce: \
             `continuo-train eval models/continuo-flute.json P`\n\n## Paired evaluation: `P`\n\n\
             | a |\n\nBars:\n- [x] ok\n"
        );
        assert!(append_paired_eval(&ctx, &dir.join("missing"), &args, printed).is_err());
    }
}
