//! A reference [`HopProcessor`]: STFT analysis followed by resynthesis, which reconstructs its
//! input exactly. The engine tests use it to prove latency, alignment and the miss crossfade with
//! a processor that does real hop-based work, independent of any model.

use super::audio::HopProcessor;
use crate::dsp::stft::{StftConfig, StreamingStft};

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
            // The spectrum passes unchanged.
            stft.process_hop(input, output, |_| {});
        }
    }

    fn reset(&mut self) {
        self.channels.iter_mut().for_each(StreamingStft::reset);
    }
}
