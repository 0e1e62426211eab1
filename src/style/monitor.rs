//! What Style's editor shows live: input and output levels (from the audio thread) and the
//! pitch and loudness the model hears (from the worker), the last seconds of them as a trail.
//!
//! Everything is atomics, written only while an editor is open: the audio thread pays one
//! atomic load per block when no editor is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use atomic_float::AtomicF32;

/// Frames kept for the trail: about 4 s at the analysis' 250 frames per second.
pub const TRAIL_FRAMES: usize = 1024;

/// One analysed frame as the editor draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeardFrame {
    /// Fundamental frequency, Hz; `None` when the frame is unvoiced.
    pub f0_hz: Option<f32>,
    /// A-weighted loudness, dB.
    pub loudness_db: f32,
}

/// Live values for the editor. See the [module docs](self).
#[derive(Debug)]
pub struct StyleMonitor {
    open: AtomicBool,
    input_peak: AtomicF32,
    output_peak: AtomicF32,
    /// dB Auto Level adds to what the model hears, latest frame.
    level_offset_db: AtomicF32,
    /// Frames written so far; frame `i` is in `trail[i % TRAIL_FRAMES]`.
    written: AtomicU64,
    /// `f0_hz` bits (0 = unvoiced) in the high half, `loudness_db` bits in the low half, so a
    /// reader never sees one frame's f0 with another's loudness.
    trail: Box<[AtomicU64]>,
}

impl Default for StyleMonitor {
    fn default() -> Self {
        Self {
            open: AtomicBool::new(false),
            input_peak: AtomicF32::new(0.0),
            output_peak: AtomicF32::new(0.0),
            level_offset_db: AtomicF32::new(0.0),
            written: AtomicU64::new(0),
            trail: (0..TRAIL_FRAMES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl StyleMonitor {
    /// Whether an editor is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Called by the editor when it opens and closes.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Audio thread: the block's input and output peaks (kept until the editor reads them).
    pub fn record_peaks(&self, input: f32, output: f32) {
        for (meter, peak) in [(&self.input_peak, input), (&self.output_peak, output)] {
            // A plain load and store: a peak lost to a concurrent `take_peaks` is one block's.
            if peak > meter.load(Ordering::Relaxed) {
                meter.store(peak, Ordering::Relaxed);
            }
        }
    }

    /// Editor: the input and output peaks since the last call.
    pub fn take_peaks(&self) -> (f32, f32) {
        (
            self.input_peak.swap(0.0, Ordering::Relaxed),
            self.output_peak.swap(0.0, Ordering::Relaxed),
        )
    }

    /// Worker: one frame as the model hears it (only while an editor is open).
    pub fn record_frame(&self, frame: HeardFrame) {
        if !self.is_open() {
            return;
        }
        let f0 = frame.f0_hz.unwrap_or(0.0);
        let packed = (u64::from(f0.to_bits()) << 32) | u64::from(frame.loudness_db.to_bits());
        let index = self.written.load(Ordering::Relaxed);
        self.trail[(index % TRAIL_FRAMES as u64) as usize].store(packed, Ordering::Relaxed);
        self.written.store(index + 1, Ordering::Release);
    }

    /// Worker: the dB Auto Level adds now (only while an editor is open).
    pub fn record_level_offset(&self, offset_db: f32) {
        if self.is_open() {
            self.level_offset_db.store(offset_db, Ordering::Relaxed);
        }
    }

    /// Editor: the dB Auto Level added at the latest frame.
    pub fn level_offset_db(&self) -> f32 {
        self.level_offset_db.load(Ordering::Relaxed)
    }

    /// Editor: the last `count` frames (at most [`TRAIL_FRAMES`]), oldest first, into `out`.
    pub fn recent_frames(&self, count: usize, out: &mut Vec<HeardFrame>) {
        out.clear();
        let written = self.written.load(Ordering::Acquire);
        let count = (count.min(TRAIL_FRAMES) as u64).min(written);
        for index in written - count..written {
            let packed = self.trail[(index % TRAIL_FRAMES as u64) as usize].load(Ordering::Relaxed);
            let f0 = f32::from_bits((packed >> 32) as u32);
            out.push(HeardFrame {
                f0_hz: (f0 > 0.0).then_some(f0),
                loudness_db: f32::from_bits(packed as u32),
            });
        }
    }
}

/// The largest magnitude in `channels` (for the level meters).
pub fn peak<C: AsRef<[f32]>>(channels: &[C]) -> f32 {
    channels
        .iter()
        .flat_map(|c| c.as_ref().iter())
        .fold(0.0, |peak: f32, &x| peak.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f0_hz: f32, voicing: f32, loudness_db: f32) -> HeardFrame {
        HeardFrame {
            f0_hz: (voicing >= 0.5).then_some(f0_hz),
            loudness_db,
        }
    }

    #[test]
    fn the_trail_holds_the_latest_frames_only_while_an_editor_is_open() {
        let monitor = StyleMonitor::default();
        let mut frames = Vec::new();
        monitor.record_frame(frame(440.0, 1.0, -20.0));
        monitor.recent_frames(10, &mut frames);
        assert!(frames.is_empty(), "nothing recorded while closed");

        monitor.set_open(true);
        for i in 0..TRAIL_FRAMES + 5 {
            monitor.record_frame(frame(100.0 + i as f32, 1.0, -30.0));
        }
        monitor.record_frame(frame(300.0, 0.2, -60.0));
        monitor.recent_frames(3, &mut frames);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].f0_hz, Some(100.0 + (TRAIL_FRAMES + 4) as f32));
        assert_eq!(
            frames[2],
            HeardFrame {
                f0_hz: None,
                loudness_db: -60.0
            }
        );
        monitor.recent_frames(usize::MAX, &mut frames);
        assert_eq!(frames.len(), TRAIL_FRAMES, "never more than the ring holds");
    }

    #[test]
    fn peaks_are_held_until_the_editor_takes_them() {
        let monitor = StyleMonitor::default();
        monitor.record_peaks(0.5, 0.25);
        monitor.record_peaks(0.1, 0.75);
        assert_eq!(monitor.take_peaks(), (0.5, 0.75));
        assert_eq!(monitor.take_peaks(), (0.0, 0.0));
        assert_eq!(peak(&[[0.1, -0.9], [0.3, 0.2]]), 0.9);
    }
}
