//! The shape both trainers share: where a run keeps its checkpoint, how it resumes and stops,
//! the loss history it records and the progress it shows. The continuation trainer
//! ([`super::training`]) and the timbre trainer ([`super::timbre::training`]) differ only in
//! what a step computes.
//!
//! **Checkpoint folder** `models/NAME.ckpt/` ([`checkpoint_dir`]): `config.json` (the
//! trainer's config), `model.bpk` and `optim.bpk` (burnpack records), `state.json`
//! ([`TrainState`]) and any files a trainer adds (the continuation trainer's `carried.bin`).
//! It is written to `NAME.ckpt.tmp/` and renamed into place, so a half-written checkpoint
//! never replaces a complete one.
//!
//! **Resume**: `--resume` continues from a complete checkpoint with the config saved in it;
//! without one it says so and starts from step 0 ([`RunOptions::resumes`]).
//!
//! **Stop**: the stop flag ([`stop_on_ctrl_c`]) saves a checkpoint after the current step;
//! a second Ctrl-C exits at once. The time budget (`--max-minutes`, counted across resumes)
//! ends a run early but normally: the model is exported, and says so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use burn::config::Config;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Files written for model `models/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `models/NAME.onnx`
    pub onnx: PathBuf,
    /// `models/NAME.json`
    pub manifest: PathBuf,
    /// `models/NAME.report.md`
    pub report: PathBuf,
    /// `models/NAME.loss.png`
    pub plot: PathBuf,
    /// `models/NAME.ckpt/` (checkpoint folder)
    pub checkpoint: PathBuf,
}

impl ModelFiles {
    /// Paths for `out` = `models/NAME` (an `.onnx` or `.json` extension is ignored).
    pub fn new(out: &Path) -> Self {
        let stem = match out.extension().and_then(|e| e.to_str()) {
            Some("onnx" | "json") => out.with_extension(""),
            _ => out.to_path_buf(),
        };
        let with = |suffix: &str| {
            let mut name = stem.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            onnx: with(".onnx"),
            manifest: with(".json"),
            report: with(".report.md"),
            plot: with(".loss.png"),
            checkpoint: checkpoint_dir(&stem),
        }
    }

    /// The model's name (file stem).
    pub fn name(&self) -> String {
        self.manifest
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    }
}

/// The files every complete checkpoint holds (`state.json` is renamed into place last).
const CHECKPOINT_FILES: [&str; 4] = ["config.json", "model.bpk", "optim.bpk", "state.json"];

/// The checkpoint folder of an output base: `models/NAME` → `models/NAME.ckpt/`.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".ckpt");
    PathBuf::from(name)
}

/// Whether `dir` holds a complete checkpoint.
pub fn checkpoint_exists(dir: &Path) -> bool {
    CHECKPOINT_FILES.iter().all(|f| dir.join(f).is_file())
}

/// One point of the loss curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Optimiser steps done.
    pub step: usize,
    /// Mean training loss since the previous point.
    pub train: f64,
    /// Held-out loss, when evaluated at this step.
    pub valid: Option<f64>,
}

/// Where a run is; saved as `state.json` in every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// The loss curve so far.
    pub history: Vec<LossPoint>,
    /// Wall time spent training over all invocations (seconds).
    pub elapsed_secs: f64,
    /// Sum and count of training losses since the last history point.
    pub pending_loss: (f64, usize),
    /// Current epoch (0-based). Only the continuation trainer walks epochs; the timbre
    /// trainer draws step `s`'s windows from `(seed, s)` and leaves this and the next two at 0.
    pub epoch: usize,
    /// Batches of the current epoch already done.
    pub batch_in_epoch: usize,
    /// Training tokens consumed.
    pub tokens_seen: u64,
}

impl TrainState {
    /// Adds one step's training loss to the pending mean.
    pub fn add_loss(&mut self, loss: f64) {
        self.pending_loss.0 += loss;
        self.pending_loss.1 += 1;
    }

    /// Closes the pending mean into a history point at the current step (with the held-out
    /// loss, if it was evaluated) and returns it.
    pub fn push_point(&mut self, valid: Option<f64>) -> LossPoint {
        let (sum, n) = std::mem::take(&mut self.pending_loss);
        let point = LossPoint {
            step: self.step,
            train: sum / n.max(1) as f64,
            valid,
        };
        self.history.push(point);
        point
    }

    /// The mean training loss over (about) the last `steps` steps: the history points that
    /// end within them, each weighted by the steps it averages.
    pub fn recent_train_loss(&self, steps: usize) -> Option<f64> {
        let from = self.step.saturating_sub(steps);
        let (mut sum, mut count, mut previous) = (0.0, 0, 0);
        for point in &self.history {
            let covered = point.step - previous;
            previous = point.step;
            if point.step > from {
                sum += point.train * covered as f64;
                count += covered;
            }
        }
        (count > 0).then(|| sum / count as f64)
    }

    /// The last held-out loss recorded.
    pub fn last_valid_loss(&self) -> Option<f64> {
        self.history.iter().rev().find_map(|p| p.valid)
    }

    /// The progress bar's message: the last point's losses.
    pub fn message(&self) -> String {
        match self.history.last() {
            Some(LossPoint {
                train,
                valid: Some(v),
                ..
            }) => format!("loss {train:.4}, held-out {v:.4}"),
            Some(p) => format!("loss {:.4}", p.train),
            None => String::new(),
        }
    }
}

/// How to run (not part of the recipe, never saved).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Checkpoint folder ([`checkpoint_dir`] of the output base).
    pub checkpoint_dir: PathBuf,
    /// Continue from the checkpoint if there is a complete one.
    pub resume: bool,
    /// Set (by [`stop_on_ctrl_c`]) to save a checkpoint and stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Progress bars and messages on stderr.
    pub progress: bool,
    /// Behave as if `stop` were set once this many steps are done in total (tests).
    pub stop_at_step: Option<usize>,
    /// Wall-clock budget in minutes, counted across resumes (`None` = none). A run option,
    /// not part of the recipe: `--resume --max-minutes 30` gives a resumed run more time.
    pub max_minutes: Option<f64>,
}

impl RunOptions {
    /// Options with a checkpoint folder, no resume, no progress bar.
    pub fn new(checkpoint_dir: impl Into<PathBuf>) -> Self {
        Self {
            checkpoint_dir: checkpoint_dir.into(),
            resume: false,
            stop: Arc::new(AtomicBool::new(false)),
            progress: false,
            stop_at_step: None,
            max_minutes: None,
        }
    }

    /// Whether this run continues from its checkpoint: `--resume` and a complete checkpoint.
    pub fn resumes(&self) -> bool {
        self.resume && checkpoint_exists(&self.checkpoint_dir)
    }

    /// The config this run trains with: the checkpoint's when it [resumes](Self::resumes),
    /// `given` otherwise. Says which when `--resume` was asked for (with progress on).
    ///
    /// # Errors
    /// An unreadable `config.json` in the checkpoint, naming it.
    pub fn config<C: Config + Clone>(&self, given: &C) -> Result<C> {
        let dir = self.checkpoint_dir.display();
        if self.resumes() {
            self.say(format!("resuming from {dir} (its saved config is used)"));
            load_checkpoint_config(&self.checkpoint_dir)
        } else {
            if self.resume {
                self.say(format!(
                    "--resume: no complete checkpoint in {dir}; starting from step 0"
                ));
            }
            Ok(given.clone())
        }
    }

    fn say(&self, message: String) {
        if self.progress {
            eprintln!("{message}");
        }
    }

    /// Whether to save and stop now, with `step` steps done.
    pub fn should_stop(&self, step: usize) -> bool {
        self.stop.load(Ordering::SeqCst) || self.stop_at_step == Some(step)
    }

    /// Whether the run has used its time budget.
    pub fn out_of_time(&self, state: &TrainState) -> bool {
        self.max_minutes
            .is_some_and(|minutes| state.elapsed_secs >= minutes * 60.0)
    }

    /// A progress bar over `len` steps (hidden without progress). indicatif draws nothing
    /// when stderr is not a terminal, so [`Self::log`] writes plain lines there instead.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta_precise}}] {{msg}}"
            ))
            .expect("valid template"),
        );
        bar
    }

    /// Every 100 steps, a plain progress line for logs (CI, `nohup`), where no bar is drawn.
    pub fn log(&self, state: &TrainState, total_steps: usize) {
        let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        if self.progress && !is_terminal && state.step.is_multiple_of(100) {
            eprintln!(
                "step {}/{total_steps} {} ({:.1} min)",
                state.step,
                state.message(),
                state.elapsed_secs / 60.0
            );
        }
    }
}

/// A stop flag set by Ctrl-C: the trainers save a checkpoint after the current step and
/// return; a second Ctrl-C exits at once (status 130) without one.
///
/// # Errors
/// If a Ctrl-C handler is already installed.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// Writes a complete checkpoint into `dir` (see the [module docs](self)); `extra` files are
/// trainer-specific.
///
/// # Errors
/// I/O errors, naming the file.
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    config: &impl Config,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainState,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    let tmp = dir.with_extension("ckpt.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let file = |name: &str| tmp.join(name);
    config
        .save(file("config.json"))
        .with_context(|| format!("writing {}", file("config.json").display()))?;
    model
        .clone()
        .save_file(file("model.bpk"))
        .map_err(|e| anyhow!("writing {}: {e:?}", file("model.bpk").display()))?;
    optim
        .save(file("optim.bpk"))
        .map_err(|e| anyhow!("writing {}: {e:?}", file("optim.bpk").display()))?;
    for (name, bytes) in extra {
        std::fs::write(file(name), bytes)
            .with_context(|| format!("writing {}", file(name).display()))?;
    }
    std::fs::write(file("state.json"), serde_json::to_string(state)?)
        .with_context(|| format!("writing {}", file("state.json").display()))?;
    // The previous checkpoint is moved aside, not deleted, before the new one takes its
    // place: between the two renames (not during a slow delete) is the only moment a second
    // Ctrl-C could leave no complete checkpoint behind.
    let old = dir.with_extension("ckpt.old");
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).with_context(|| format!("renaming {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("renaming to {}", dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// The config saved in a checkpoint.
///
/// # Errors
/// If the file is missing or does not parse, naming it.
pub fn load_checkpoint_config<C: Config>(dir: &Path) -> Result<C> {
    let path = dir.join("config.json");
    C::load(&path).map_err(|e| anyhow!("reading {}: {e}", path.display()))
}

/// Loads a checkpoint's weights, optimiser state and [`TrainState`] into a freshly built
/// `model` and `optim` (made from the checkpoint's config).
///
/// # Errors
/// Missing or unreadable files, naming them; a `state.json` from an older trainer.
pub fn load_checkpoint<M: Module>(
    dir: &Path,
    model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, TrainState)> {
    let path = dir.join("model.bpk");
    let model = model
        .try_load_file(&path)
        .map_err(|e| anyhow!("reading {}: {e:?}", path.display()))?;
    let path = dir.join("optim.bpk");
    let optim = optim
        .load(&path)
        .map_err(|e| anyhow!("reading {}: {e:?}", path.display()))?;
    let path = dir.join("state.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let state = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing {} (a checkpoint of an older continuo-train cannot be resumed: delete \
             the folder to start over)",
            path.display()
        )
    })?;
    Ok((model, optim, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_folder_sits_beside_the_model_files() {
        assert_eq!(
            checkpoint_dir(Path::new("models/continuo-violin")),
            PathBuf::from("models/continuo-violin.ckpt")
        );
        // A dotted name keeps its dots: the folder is named after the whole base.
        assert_eq!(
            checkpoint_dir(Path::new("out/v1.2")),
            PathBuf::from("out/v1.2.ckpt")
        );
    }

    #[test]
    fn history_points_hold_the_mean_since_the_last_point() {
        let mut state = TrainState::default();
        for (step, loss) in [(1, 4.0), (2, 2.0)] {
            state.step = step;
            state.add_loss(loss);
        }
        assert_eq!(state.push_point(None).train, 3.0);
        state.step = 3;
        state.add_loss(1.0);
        let point = state.push_point(Some(0.5));
        assert_eq!((point.step, point.train, point.valid), (3, 1.0, Some(0.5)));
        assert_eq!(state.pending_loss, (0.0, 0));
        // Steps 1–2 at 3.0 and step 3 at 1.0: weighted by the steps each point covers.
        assert_eq!(state.recent_train_loss(3), Some(7.0 / 3.0));
        assert_eq!(state.recent_train_loss(1), Some(1.0));
        assert_eq!(state.last_valid_loss(), Some(0.5));
        assert_eq!(state.message(), "loss 1.0000, held-out 0.5000");
    }
}
