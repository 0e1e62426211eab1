//! Tiny synthetic data shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use continuo::train::timbre::model::TimbreModelConfig;
use continuo::train::timbre::TimbreTrainingConfig;

/// A harmonic tone with moving f0 and loudness: `seconds` at 16 kHz.
pub fn harmonic_tone(seconds: f32, base_hz: f32, seed: u32) -> Vec<f32> {
    let sr = 16000.0f64;
    let n = (seconds as f64 * sr) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / sr;
            let f0 = base_hz as f64 * (1.0 + 0.05 * (t * (1.3 + seed as f64 * 0.1)).sin());
            let env = 0.15 * (0.6 + 0.4 * (t * 2.1 + seed as f64).sin());
            phase += std::f64::consts::TAU * f0 / sr;
            let y: f64 = (1..=6)
                .map(|k| (k as f64 * phase).sin() / (k * k) as f64)
                .sum();
            (env * y) as f32
        })
        .collect()
}

/// Writes a 16-bit mono 16 kHz WAV.
pub fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// A folder of `files` synthetic tones.
pub fn tone_folder(dir: &Path, files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        let tone = harmonic_tone(1.5, 220.0 + 40.0 * i as f32, i as u32);
        write_wav(&dir.join(format!("tone{i}.wav")), &tone);
    }
}

/// A tiny, fast configuration.
pub fn tiny_config(steps: usize) -> TimbreTrainingConfig {
    TimbreTrainingConfig::new(
        TimbreModelConfig::new()
            .with_hidden(16)
            .with_harmonics(8)
            .with_noise_bands(8),
    )
    .with_steps(steps)
    .with_batch_size(2)
    .with_frames_per_example(32)
    .with_learning_rate(1e-2)
    .with_checkpoint_every(0)
    .with_validate_every(0)
    .with_heldout_fraction(0.3)
    .with_seed(7)
}
