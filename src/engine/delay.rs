//! Fixed multichannel delay line for the dry path, so dry and wet stay phase-aligned.

use super::stream::MAX_CHANNELS;

/// Delays every channel by the same whole number of samples. Allocated once in `new`.
///
/// # Examples
/// ```
/// use continuo::engine::delay::DelayLine;
///
/// let mut delay = DelayLine::new(1, 2);
/// let out: Vec<f32> = [1.0, 2.0, 3.0].iter().map(|&x| { let mut f = [x]; delay.process_frame(&mut f); f[0] }).collect();
/// assert_eq!(out, [0.0, 0.0, 1.0]);
/// ```
pub struct DelayLine {
    /// One ring of `delay` samples per channel.
    buffers: Vec<Vec<f32>>,
    position: usize,
}

impl DelayLine {
    /// A delay of `delay_samples` for `channels` channels, starting silent.
    pub fn new(channels: usize, delay_samples: usize) -> Self {
        Self {
            buffers: vec![vec![0.0; delay_samples]; channels.min(MAX_CHANNELS)],
            position: 0,
        }
    }

    /// The delay in samples.
    pub fn delay_samples(&self) -> usize {
        self.buffers.first().map_or(0, Vec::len)
    }

    /// Replaces each sample of `frame` (one per channel) with the one from `delay` samples ago.
    pub fn process_frame(&mut self, frame: &mut [f32]) {
        if self.delay_samples() == 0 {
            return;
        }
        for (buffer, sample) in self.buffers.iter_mut().zip(frame.iter_mut()) {
            std::mem::swap(&mut buffer[self.position], sample);
        }
        self.position = (self.position + 1) % self.delay_samples();
    }

    /// Back to silence.
    pub fn reset(&mut self) {
        self.buffers.iter_mut().for_each(|buffer| buffer.fill(0.0));
        self.position = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_each_channel_exactly() {
        let mut delay = DelayLine::new(2, 3);
        let output: Vec<[f32; 2]> = (1..=6)
            .map(|n| {
                let mut frame = [n as f32, -(n as f32)];
                delay.process_frame(&mut frame);
                frame
            })
            .collect();
        assert_eq!(
            output,
            vec![
                [0.0, 0.0],
                [0.0, 0.0],
                [0.0, 0.0],
                [1.0, -1.0],
                [2.0, -2.0],
                [3.0, -3.0]
            ]
        );
    }
}
