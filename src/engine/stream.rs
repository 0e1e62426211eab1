//! Timestamped multichannel audio streams over `rtrb` rings (one direction each).
//!
//! Samples travel interleaved in one ring; a second ring carries a [`ChunkHeader`] per chunk
//! giving the stream index of its first frame. Headers are pushed after their samples, so a
//! reader that sees a header can always read its samples. Because every chunk is timestamped,
//! the reader can drop stale frames (after a stall) and notice gaps (after an overflow) without
//! ever losing alignment with the host's timeline.
//!
//! Both ends are wait-free: a full ring makes the write fail (the caller counts it), an empty
//! ring makes the read fail. Nothing allocates after [`stream`].

use rtrb::{Consumer, Producer, RingBuffer};

/// Most channels a stream carries (the plugins are mono or stereo).
pub const MAX_CHANNELS: usize = 2;

/// Where a chunk of frames sits on the stream's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Stream index of the chunk's first frame.
    pub start: u64,
    /// Number of frames in the chunk.
    pub frames: u32,
}

/// Creates a stream of `channels` channels holding up to `capacity_frames` frames.
pub fn stream(channels: usize, capacity_frames: usize) -> (StreamWriter, StreamReader) {
    assert!(
        (1..=MAX_CHANNELS).contains(&channels),
        "streams carry 1 or 2 channels"
    );
    let (samples_in, samples_out) = RingBuffer::new(capacity_frames * channels);
    // Chunks hold at least one frame, so this many headers always fit.
    let (headers_in, headers_out) = RingBuffer::new(capacity_frames.max(1));
    (
        StreamWriter {
            samples: samples_in,
            headers: headers_in,
            channels,
        },
        StreamReader {
            samples: samples_out,
            headers: headers_out,
            channels,
            current: None,
        },
    )
}

/// The writing end of a stream.
pub struct StreamWriter {
    samples: Producer<f32>,
    headers: Producer<ChunkHeader>,
    channels: usize,
}

impl StreamWriter {
    /// Writes `frames` frames starting at stream index `start`, taking sample `frame` of
    /// channel `channel` from `sample(channel, frame)`. Returns `false` (writing nothing) when
    /// the stream has no room.
    pub fn write(
        &mut self,
        start: u64,
        frames: usize,
        sample: impl Fn(usize, usize) -> f32,
    ) -> bool {
        let channels = self.channels;
        if frames == 0 || self.headers.slots() == 0 {
            return frames == 0;
        }
        let Ok(chunk) = self.samples.write_chunk_uninit(frames * channels) else {
            return false;
        };
        let interleaved =
            (0..frames).flat_map(|frame| (0..channels).map(move |channel| (channel, frame)));
        chunk.fill_from_iter(interleaved.map(|(channel, frame)| sample(channel, frame)));
        // Checked above that a header slot is free; this end is the only producer.
        self.headers
            .push(ChunkHeader {
                start,
                frames: frames as u32,
            })
            .is_ok()
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// What [`StreamReader::read_frame_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRead {
    /// The frame was there and has been copied out.
    Ready,
    /// The frame has not arrived (late writer) or never will (gap in the stream).
    Missing,
}

/// The reading end of a stream.
pub struct StreamReader {
    samples: Consumer<f32>,
    headers: Consumer<ChunkHeader>,
    channels: usize,
    /// The chunk being read: stream index of its next frame and frames left.
    current: Option<(u64, u32)>,
}

impl StreamReader {
    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames written and not yet read (including ones whose header is still being written).
    pub fn frames_buffered(&self) -> usize {
        self.samples.slots() / self.channels
    }

    /// Reads the frame at stream index `index` into `frame` (one value per channel), dropping
    /// any older frames first. Bounded: at most one ring's worth is skipped, in O(chunks).
    pub fn read_frame_at(&mut self, index: u64, frame: &mut [f32]) -> FrameRead {
        loop {
            let (next, left) = match self.current {
                Some((next, left)) if left > 0 => (next, left),
                _ => match self.headers.pop() {
                    Ok(header) => (header.start, header.frames),
                    Err(_) => {
                        self.current = None;
                        return FrameRead::Missing;
                    }
                },
            };
            if next > index {
                self.current = Some((next, left));
                return FrameRead::Missing;
            }
            let stale = (index - next).min(u64::from(left)) as u32;
            if stale > 0 {
                self.skip_samples(stale as usize * self.channels);
                self.current = Some((next + u64::from(stale), left - stale));
                continue;
            }
            for (channel, value) in frame.iter_mut().enumerate().take(self.channels) {
                *value = self.samples.pop().unwrap_or(0.0);
                debug_assert!(channel < self.channels);
            }
            self.current = Some((next + 1, left - 1));
            return FrameRead::Ready;
        }
    }

    /// Takes the next whole chunk: `sink(start, first, second)` receives its stream index and
    /// its interleaved samples (in two slices when they wrap around the ring). Returns `false`
    /// when no chunk is waiting. For the worker side, which reads chunk by chunk.
    pub fn read_chunk(&mut self, mut sink: impl FnMut(u64, &[f32], &[f32])) -> bool {
        debug_assert!(self.current.is_none(), "do not mix chunk and frame reads");
        let Ok(header) = self.headers.pop() else {
            return false;
        };
        let len = header.frames as usize * self.channels;
        match self.samples.read_chunk(len) {
            Ok(chunk) => {
                let (first, second) = chunk.as_slices();
                sink(header.start, first, second);
                chunk.commit_all();
            }
            // Unreachable with a well-behaved writer (samples precede headers); skip the header.
            Err(_) => debug_assert!(false, "stream header without samples"),
        }
        true
    }

    fn skip_samples(&mut self, count: usize) {
        let available = self.samples.slots().min(count);
        if let Ok(chunk) = self.samples.read_chunk(available) {
            chunk.commit_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_arrive_in_order_with_their_indices() {
        let (mut writer, mut reader) = stream(2, 64);
        assert!(writer.write(10, 4, |channel, frame| (frame * 10 + channel) as f32));
        let mut frame = [0.0; 2];
        assert_eq!(
            reader.read_frame_at(9, &mut frame),
            FrameRead::Missing,
            "index before the chunk"
        );
        assert_eq!(reader.read_frame_at(10, &mut frame), FrameRead::Ready);
        assert_eq!(frame, [0.0, 1.0]);
        // Skipping index 11 drops it.
        assert_eq!(reader.read_frame_at(12, &mut frame), FrameRead::Ready);
        assert_eq!(frame, [20.0, 21.0]);
        assert_eq!(reader.read_frame_at(13, &mut frame), FrameRead::Ready);
        assert_eq!(reader.read_frame_at(14, &mut frame), FrameRead::Missing);
        assert_eq!(reader.frames_buffered(), 0);
    }

    #[test]
    fn stale_chunks_are_dropped_and_gaps_reported() {
        let (mut writer, mut reader) = stream(1, 64);
        assert!(writer.write(0, 8, |_, frame| frame as f32));
        assert!(writer.write(20, 8, |_, frame| 100.0 + frame as f32));
        let mut frame = [0.0];
        assert_eq!(
            reader.read_frame_at(16, &mut frame),
            FrameRead::Missing,
            "gap between chunks"
        );
        assert_eq!(reader.read_frame_at(21, &mut frame), FrameRead::Ready);
        assert_eq!(frame, [101.0]);
    }

    #[test]
    fn full_stream_refuses_whole_chunk() {
        let (mut writer, mut reader) = stream(1, 8);
        assert!(writer.write(0, 6, |_, _| 1.0));
        assert!(!writer.write(6, 6, |_, _| 2.0), "no room for 6 more frames");
        let mut seen = Vec::new();
        assert!(reader.read_chunk(|start, a, b| seen.push((start, a.len() + b.len()))));
        assert_eq!(seen, vec![(0, 6)]);
        assert!(!reader.read_chunk(|_, _, _| {}));
    }
}
