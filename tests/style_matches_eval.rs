#![cfg(feature = "train")]
//! One engine: `continuo style` on a 16 kHz file (the plugin's processor, run by the engine's
//! worker in host-sized blocks, through the WAV writer) gives the same audio as the trainer's
//! evaluation path (`continuo-train eval`, the processor run hop by hop over the whole file). So
//! the figures `eval` reports are the plugin's figures.

use std::path::PathBuf;
use std::process::Command;

use continuo::model::{load_model, BackendChoice, ModelKind};
use continuo::style::TimbreModel;
use continuo::train::timbre::data::read_mono;
use continuo::train::timbre::eval::{evaluation_processor, transfer};

#[test]
fn cli_style_equals_the_evaluated_transfer() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let input = root.join("tests/fixtures/melody_16k.wav");
    let manifest = root.join("models/continuo-violin.json");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("styled.wav");
    // Gate off: the evaluation has no gate.
    let run = Command::new(env!("CARGO_BIN_EXE_continuo"))
        .args(["style", "--gate", "-100", "--model"])
        .arg(&manifest)
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .expect("run continuo");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cli = continuo::wav::read(&output).expect("output").channels[0].clone();

    let loaded = load_model(&manifest, ModelKind::Timbre, BackendChoice::Auto).expect("loads");
    let model = TimbreModel::new(loaded).expect("a timbre model");
    let mut processor = evaluation_processor(model, 16_000, true, 0).expect("processor");
    let audio = read_mono(&input, 16_000).expect("fixture");
    let evaluated = transfer(&mut processor, &audio);

    assert_eq!(cli.len(), evaluated.len());
    let peak = evaluated.iter().fold(0.0f32, |m, y| m.max(y.abs()));
    let difference = cli
        .iter()
        .zip(&evaluated)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("peak {peak:.3}, max difference {difference:.2e}");
    assert!(peak > 0.05, "the transfer is not silent");
    // Through the engine and a WAV file: at most the file's sample rounding.
    assert!(
        difference <= 1e-4 * peak.max(1.0),
        "max difference {difference:.2e}"
    );
}
