#![cfg(feature = "train")]
//! How a timbre decoder starts, and the figure that shows whether its harmonic branch is alive:
//! the harmonic roll-off of the initial distribution, and the harmonic share of a render.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use continuo::train::timbre::data::WindowBatch;
use continuo::train::timbre::export::to_vec;
use continuo::train::timbre::model::{TimbreModel, TimbreModelConfig};
use continuo::train::timbre::synth::DiffSynth;
use continuo::train::timbre::training::harmonic_share;
use continuo::train::timbre::TimbreTrainingConfig;

const HARMONICS: usize = 48;

fn fresh_model(rolloff_db: f32, device: &Device) -> TimbreModel {
    device.seed(3);
    TimbreModelConfig::new()
        .with_hidden(32)
        .with_harmonics(HARMONICS)
        .init(device)
        .with_harmonic_rolloff(rolloff_db)
}

/// `frames` frames of a 220 Hz note at a middling level, and silence as the target.
fn note_batch(frames: usize, hop: usize) -> WindowBatch {
    let f0_norm = continuo::dsp::hz_to_midi(220.0) / 127.0;
    WindowBatch {
        batch: 1,
        frames,
        features: (0..frames).flat_map(|_| [f0_norm, 0.6]).collect(),
        f0_hz: vec![220.0; frames],
        target: vec![0.0; frames * hop],
    }
}

/// Mean level difference (dB) between harmonic `2k` and harmonic `k`, k = 1…N/2, averaged over
/// the frames of [`note_batch`].
fn octave_slope_db(model: &TimbreModel, device: &Device) -> f32 {
    let batch = note_batch(20, 64);
    let x = Tensor::<3>::from_data(
        TensorData::new(batch.features.clone(), [1, batch.frames, 2]),
        device,
    );
    let weights = to_vec(model.forward(x, None).harmonics);
    let mean = |k: usize| {
        (0..batch.frames)
            .map(|f| weights[f * HARMONICS + k - 1])
            .sum::<f32>()
            / batch.frames as f32
    };
    let pairs = HARMONICS / 2;
    (1..=pairs)
        .map(|k| 20.0 * (mean(2 * k) / mean(k)).log10())
        .sum::<f32>()
        / pairs as f32
}

#[test]
fn a_rolloff_start_falls_by_its_slope_and_the_default_start_is_flat() {
    let device = Device::flex();
    let flat = octave_slope_db(&fresh_model(0.0, &device), &device);
    let falling = octave_slope_db(&fresh_model(12.0, &device), &device);
    assert!(
        flat.abs() < 2.0,
        "the default start is flat: {flat:.2} dB/octave"
    );
    assert!(
        (falling + 12.0).abs() < 2.0,
        "a 12 dB/octave start falls {falling:.2} dB/octave"
    );
}

#[test]
fn harmonic_share_is_high_for_a_fresh_decoder_and_near_zero_when_its_harmonics_are_silenced() {
    let device = Device::flex();
    let config = TimbreTrainingConfig::new(TimbreModelConfig::new().with_harmonics(HARMONICS))
        .with_synth_rate_hz(48_000);
    let synth = DiffSynth::new(config.synth_config(), &device);
    let hop = config.synth_hop();
    let batch = note_batch(40, hop);
    let noise: Vec<f32> = (0..40 * 2 * hop)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();

    // A fresh decoder starts with quiet noise (DDSP's −5 bias): the harmonics carry the sound.
    let fresh = fresh_model(12.0, &device);
    let share = harmonic_share(&fresh, &synth, &batch, &noise, &device);
    assert!(share > 0.9, "fresh decoder: harmonic share {share}");

    // Amplitude head driven to its floor: what a collapsed model renders.
    let mut collapsed = fresh_model(12.0, &device);
    collapsed.amplitude.bias = collapsed
        .amplitude
        .bias
        .take()
        .map(|b| Param::from_tensor(b.val().zeros_like() - 40.0));
    let share = harmonic_share(&collapsed, &synth, &batch, &noise, &device);
    assert!(share < 0.05, "silenced harmonics: harmonic share {share}");
}

#[test]
fn a_tilted_harmonic_bias_still_trains() {
    let device = Device::flex().autodiff();
    let model = fresh_model(12.0, &device);
    let batch = note_batch(8, 64);
    let x = Tensor::<3>::from_data(TensorData::new(batch.features, [1, 8, 2]), &device);
    // Any loss that depends on the distribution gives the bias a gradient.
    let loss = model.forward(x, None).harmonics.narrow(2, 0, 1).sum();
    let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
    let bias = model
        .harmonics
        .bias
        .as_ref()
        .expect("the harmonic head has a bias");
    let gradient = grads
        .get::<1>(bias.id)
        .expect("the tilted bias is still a trained parameter");
    assert!(to_vec(gradient.abs().sum())[0] > 0.0);
}
