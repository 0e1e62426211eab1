#![cfg(feature = "train")]
//! A run stopped and resumed from its checkpoint repeats the uninterrupted run exactly, under
//! the continuation trainer's rules (`continuo::train::run`).

mod timbre_support;

use continuo::train::run::checkpoint_exists;
use continuo::train::timbre::export::gru_weights;
use continuo::train::timbre::{train_timbre, TimbreTrainArgs};

#[test]
fn resume_reproduces_the_uninterrupted_run() {
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
