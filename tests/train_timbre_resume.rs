#![cfg(feature = "train")]
//! A run stopped and resumed from its checkpoint repeats the uninterrupted run exactly.

mod timbre_support;

use continuo::train::timbre::export::gru_weights;
use continuo::train::timbre::{train_timbre, TimbreTrainArgs};

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(&dir.path().join("data"), 2);
    let args = |out: &str, resume: bool, stop_after: Option<usize>| TimbreTrainArgs {
        data_dir: dir.path().join("data"),
        out: dir.path().join(out),
        config: timbre_support::tiny_config(6),
        resume,
        progress: false,
        stop_after,
        skip_export: true,
    };
    let straight = train_timbre(&args("straight", false, None)).unwrap();
    let first = train_timbre(&args("split", false, Some(3))).unwrap();
    assert_eq!(first.state.step, 3);
    // The continuation trainer's folder name: one convention for both trainers.
    assert!(dir.path().join("split.ckpt/state.json").is_file());
    let resumed = train_timbre(&args("split", true, None)).unwrap();
    assert_eq!(resumed.state.step, 6);
    assert_eq!(straight.state.train_loss, resumed.state.train_loss);
    let w = |o: &continuo::train::timbre::TimbreTrainOutcome| gru_weights(&o.model, false).r;
    assert_eq!(w(&straight), w(&resumed));
    // As the continuation trainer: --resume without a checkpoint starts from step 0.
    let fresh = train_timbre(&args("fresh", true, Some(2))).unwrap();
    assert_eq!(fresh.state.step, 2);
}
