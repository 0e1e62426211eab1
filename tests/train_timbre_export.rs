#![cfg(feature = "train")]
//! The exported ONNX matches burn's forward pass on ONNX Runtime and tract (≤ 1e-4), and the
//! negative control (z/r gates swapped) fails the same check.
//!
//! Needs ONNX Runtime: set ORT_DYLIB_PATH (e.g. /work/main/target/onnxruntime/libonnxruntime.so.1.31.1).

use std::collections::BTreeMap;

use burn::tensor::Device;
use continuo::dsp::synth::{NoiseBandSpacing, SynthConfig};
use continuo::train::timbre::export::{negative_control, verify, write_model, VERIFY_TOLERANCE};
use continuo::train::timbre::model::TimbreModelConfig;

#[test]
fn export_verifies_on_both_backends_and_negative_control_fails() {
    let ort = std::env::var("ORT_DYLIB_PATH").unwrap_or_default();
    assert!(
        !ort.is_empty() && std::path::Path::new(&ort).exists(),
        "ORT_DYLIB_PATH must name libonnxruntime.so (e.g. /work/main/target/onnxruntime/libonnxruntime.so.1.31.1); got {ort:?}"
    );
    let device = Device::flex();
    device.seed(5);
    let model = TimbreModelConfig::new()
        .with_hidden(24)
        .with_harmonics(10)
        .with_noise_bands(7)
        .init(&device);
    let dir = tempfile::tempdir().unwrap();
    let full_band = SynthConfig {
        noise_band_spacing: NoiseBandSpacing::Mel,
        ..SynthConfig::new(48_000.0, 192, 10, 7)
    };
    let manifest = write_model(
        &model,
        &dir.path().join("tiny"),
        "tiny",
        &continuo::style::features::timbre_feature_config(continuo::style::features::F0_MIN_HZ),
        &full_band,
        serde_json::json!({}),
        BTreeMap::new(),
        false,
    )
    .unwrap();
    // The manifest records the band the synthesiser filled in training.
    let written = continuo::model::Manifest::load(&manifest).unwrap();
    let synth = written.synth.expect("synth section");
    assert_eq!(
        (synth.max_hz, synth.noise_band_spacing.as_str()),
        (24_000.0, "mel")
    );
    let v = verify(&model, &manifest, 11).unwrap();
    assert_eq!(v.backends.len(), 2);
    for b in &v.backends {
        assert!(b.max_abs_error <= VERIFY_TOLERANCE, "{b:?}");
    }
    let message = negative_control(&model, &dir.path().join("neg"), 11).unwrap();
    assert!(message.contains("verification failed"), "{message}");
}
