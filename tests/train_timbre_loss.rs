#![cfg(feature = "train")]
//! The training loss is the evaluation metric, and it decreases on a synthetic harmonic signal.

mod timbre_support;

use burn::tensor::{Device, Tensor, TensorData};
use continuo::dsp::metrics::multiscale_spectral_distance;
use continuo::train::timbre::export::to_vec;
use continuo::train::timbre::loss::SpectralLoss;
use continuo::train::timbre::{train_timbre, TimbreTrainArgs};

#[test]
fn burn_loss_equals_library_metric() {
    let device = Device::flex();
    let a = timbre_support::harmonic_tone(0.4, 330.0, 1);
    let b = timbre_support::harmonic_tone(0.4, 335.0, 2);
    let loss = SpectralLoss::new(&device);
    let t =
        |v: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(v.clone(), [1, v.len()]), &device);
    let got = to_vec(loss.forward(t(&b), t(&a)))[0];
    let want = multiscale_spectral_distance(&a, &b);
    assert!(
        (got - want).abs() <= 1e-3 * want,
        "burn {got} vs metric {want}"
    );
}

#[test]
fn loss_decreases_on_a_synthetic_harmonic_signal() {
    let dir = tempfile::tempdir().unwrap();
    timbre_support::tone_folder(&dir.path().join("data"), 3);
    let outcome = train_timbre(&TimbreTrainArgs {
        skip_export: true,
        ..TimbreTrainArgs::new(
            dir.path().join("data"),
            dir.path().join("out/tiny"),
            timbre_support::tiny_config(40).with_log_every(5),
        )
    })
    .unwrap();
    // One point per 5 steps: the mean loss of steps 1–5, …, 36–40.
    let points = &outcome.state.history;
    assert_eq!(points.len(), 8);
    assert_eq!(points.last().map(|p| p.step), Some(40));
    let (first, last) = (points[0].train, points[7].train);
    assert!(last < 0.85 * first, "loss {first} → {last}");
}
