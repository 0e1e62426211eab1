#![cfg(feature = "train")]
//! A run stopped and resumed from its checkpoint repeats the uninterrupted run exactly, under
//! the continuation trainer's rules (`continuo::train::run`).

mod timbre_support;

/// burn's device seed is process-wide: the tests of this file train one at a time, or one's
/// draws would interleave with the other's and the resumed run could not repeat the straight one.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

use std::sync::{Mutex, MutexGuard};

use continuo::train::run::checkpoint_exists;
use continuo::train::timbre::export::gru_weights;
use continuo::train::timbre::{train_timbre, TimbreTrainArgs};

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(&dir.path().join("data"), 2);
    let args = |out: &str, resume: bool, stop_at_step: Option<usize>| TimbreTrainArgs {
        resume,
        stop_at_step,
        skip_export: true,
        ..TimbreTrainArgs::new(
            dir.path().join("data"),
            dir.path().join(out),
            timbre_support::tiny_config(6),
        )
    };
    let straight = train_timbre(&args("straight", false, None)).unwrap();
    let first = train_timbre(&args("split", false, Some(3))).unwrap();
    assert_eq!(first.state.step, 3);
    assert!(first.interrupted, "a stop is reported as one");
    assert!(checkpoint_exists(&dir.path().join("split.ckpt")));
    let resumed = train_timbre(&args("split", true, None)).unwrap();
    assert_eq!(resumed.state.step, 6);
    assert!(!resumed.interrupted);
    assert_eq!(straight.state.history, resumed.state.history);
    let w = |o: &continuo::train::timbre::TimbreTrainOutcome| gru_weights(&o.model, false).r;
    assert_eq!(w(&straight), w(&resumed));
    // --resume without a checkpoint starts from step 0.
    let fresh = train_timbre(&args("fresh", true, Some(2))).unwrap();
    assert_eq!(fresh.state.step, 2);
}

/// As the continuation trainer: the budget ends a run normally and a resume may extend it.
#[test]
fn the_time_budget_ends_a_run_and_a_resume_may_extend_it() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(&dir.path().join("data"), 2);
    let args = |resume: bool, max_minutes: Option<f64>| TimbreTrainArgs {
        resume,
        max_minutes,
        skip_export: true,
        ..TimbreTrainArgs::new(
            dir.path().join("data"),
            dir.path().join("budget"),
            timbre_support::tiny_config(6),
        )
    };
    let short = train_timbre(&args(false, Some(0.0))).unwrap();
    assert!(short.time_limited && !short.interrupted);
    assert_eq!(short.state.step, 1);
    assert!(
        short.final_valid_loss.is_some(),
        "the last step is validated"
    );
    // Resumed with its budget spent, a run trains no further.
    let again = train_timbre(&args(true, Some(0.0))).unwrap();
    assert!(again.time_limited);
    assert_eq!(again.state.step, 1);
    let extended = train_timbre(&args(true, None)).unwrap();
    assert!(!extended.time_limited);
    assert_eq!(extended.state.step, 6);
}
