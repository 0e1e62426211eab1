//! Offline rendering through the real-time engine, in host-sized blocks.

use super::audio::{AudioEngine, MixGain, Timing};

/// Renders `input` (one `Vec` per channel) through `engine` in blocks of `block_size`, waiting
/// for the worker ([`Timing::Offline`]), and removes the engine's latency so the output lines up
/// with the input sample for sample and has the same length.
pub fn render(
    engine: &mut AudioEngine,
    input: &[Vec<f32>],
    block_size: usize,
    mix_gain: MixGain,
) -> Vec<Vec<f32>> {
    let latency = engine.latency_samples();
    let frames = input.first().map_or(0, Vec::len);
    let total = frames + latency;
    let mut output: Vec<Vec<f32>> = input
        .iter()
        .map(|channel| {
            let mut padded = Vec::with_capacity(total);
            padded.extend_from_slice(channel);
            padded.resize(total, 0.0);
            padded
        })
        .collect();
    let block_size = block_size.max(1);
    let mut offset = 0;
    while offset < total {
        let len = block_size.min(total - offset);
        let mut block: Vec<&mut [f32]> = output
            .iter_mut()
            .map(|channel| &mut channel[offset..offset + len])
            .collect();
        engine.process(&mut block, Timing::Offline, || mix_gain);
        offset += len;
    }
    for channel in &mut output {
        channel.drain(..latency);
    }
    output
}
