//! Continuo Style's signal path as run by the engine's worker.
//!
//! For now the worker runs a real STFT analysis/resynthesis that reconstructs its input: the
//! whole pipeline (rings, worker, crossfade, latency) works end to end before any model exists.

use crate::dsp::stft::{StftConfig, StreamingStft};
use crate::engine::audio::HopProcessor;

/// STFT analysis followed by overlap-add resynthesis, one per channel.
pub struct StftResynthesis {
    channels: Vec<StreamingStft>,
}

impl StftResynthesis {
    /// Window of about 21 ms at the given rate (1024 samples up to 48 kHz, 2048 above),
    /// hop a quarter of it.
    pub fn new(sample_rate: f32, channels: usize) -> Self {
        let window_size = if sample_rate > 64_000.0 { 2048 } else { 1024 };
        let config = StftConfig {
            window_size,
            hop_size: window_size / 4,
        };
        Self {
            channels: (0..channels.max(1))
                .map(|_| StreamingStft::new(config))
                .collect(),
        }
    }
}

impl HopProcessor for StftResynthesis {
    fn hop_size(&self) -> usize {
        self.channels[0].config().hop_size
    }

    fn latency_samples(&self) -> usize {
        self.channels[0].latency_samples()
    }

    fn process_hop(&mut self, input: &[Vec<f32>], output: &mut [Vec<f32>]) {
        for ((stft, input), output) in self.channels.iter_mut().zip(input).zip(output.iter_mut()) {
            // The spectrum passes unchanged: the timbre model will act here.
            stft.process_hop(input, output, |_| {});
        }
    }

    fn reset(&mut self) {
        self.channels.iter_mut().for_each(StreamingStft::reset);
    }
}
