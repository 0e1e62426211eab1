#![cfg(feature = "train")]
//! Auto Level: a player recording 12 dB quieter hears (once scaled back) the same restyled
//! instrument, where without it the model plays a softer, darker one. Through the plugin's own
//! processor at 48 kHz with the shipped violin.

use std::path::PathBuf;

use continuo::dsp::metrics::multiscale_spectral_distance;
use continuo::dsp::resample::StreamingResampler;
use continuo::model::{load_model, BackendChoice, ModelKind};
use continuo::style::TimbreModel;
use continuo::train::timbre::data::read_mono;
use continuo::train::timbre::eval::{evaluation_processor, transfer};

const RATE: u32 = 48_000;
const QUIETER_DB: f32 = 12.0;
/// Compared from here on: Auto Level has heard the player for a while.
const SETTLED_S: f32 = 1.5;

#[test]
fn a_quieter_recording_is_restyled_alike_with_auto_level_and_unlike_without() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("models/continuo-violin.json");
    let loaded = load_model(&manifest, ModelKind::Timbre, BackendChoice::Auto).expect("loads");
    assert!(
        loaded
            .manifest
            .features
            .as_ref()
            .and_then(|f| f.loudness_reference_db)
            .is_some(),
        "the shipped violin records its training level"
    );
    // The 16 kHz melody up-sampled: the host rate, its band below 8 kHz.
    let melody = read_mono(&root.join("tests/fixtures/melody_16k.wav"), 16_000).expect("fixture");
    let source = StreamingResampler::resample(&melody, 16_000, RATE).expect("resample");
    let gain = 10f32.powf(-QUIETER_DB / 20.0);
    let quiet: Vec<f32> = source.iter().map(|x| x * gain).collect();
    let settled = (SETTLED_S * RATE as f32) as usize;

    let mut distances = Vec::new();
    for auto_level in [true, false] {
        let loaded = load_model(&manifest, ModelKind::Timbre, BackendChoice::Auto).expect("loads");
        let model = TimbreModel::new(loaded).expect("a timbre model");
        let mut processor = evaluation_processor(model, RATE, auto_level, 0).expect("processor");
        let as_recorded = transfer(&mut processor, &source);
        let quieter: Vec<f32> = transfer(&mut processor, &quiet)
            .into_iter()
            .map(|x| x / gain)
            .collect();
        let peak = as_recorded.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            peak > 0.01,
            "Auto Level {auto_level}: the transfer is silent"
        );
        let distance = multiscale_spectral_distance(&as_recorded[settled..], &quieter[settled..]);
        println!("Auto Level {auto_level}: distance between the two recordings {distance:.3}");
        distances.push(distance);
    }
    let (with, without) = (distances[0], distances[1]);
    assert!(
        with < 0.25 * without,
        "with Auto Level {with:.3}, without {without:.3}: the level still changes the sound"
    );
}
