//! The streaming `process_*` methods must not allocate once `new` has run (style rule 5): a
//! counting global allocator checks it. One test in this binary, so no other thread allocates
//! while counting is on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use continuo::dsp::loudness::{LoudnessConfig, LoudnessMeter};
use continuo::dsp::onset::{OnsetConfig, OnsetDetector};
use continuo::dsp::pitch::{PitchConfig, PitchTracker};
use continuo::dsp::resample::StreamingResampler;
use continuo::dsp::stft::{StftAnalyzer, StftConfig, StreamingStft};
use continuo::dsp::synth::{FrameControls, HarmonicNoiseSynth, SynthConfig};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn count_allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn streaming_blocks_do_not_allocate_after_new() {
    let sr = 48000.0;
    let hop = 256;
    let input: Vec<f32> = (0..hop).map(|n| (n as f32 * 0.05).sin() * 0.4).collect();
    let mut output = vec![0.0f32; hop];

    let mut stft = StreamingStft::new(StftConfig {
        window_size: 1024,
        hop_size: hop,
    });
    let mut analyzer = StftAnalyzer::new(StftConfig {
        window_size: 2048,
        hop_size: hop,
    })
    .unwrap();
    let mut pitch = PitchTracker::new(PitchConfig::new(sr, hop)).unwrap();
    let mut loudness = LoudnessMeter::new(LoudnessConfig::new(sr, hop)).unwrap();
    let mut onset = OnsetDetector::new(OnsetConfig::new(sr, hop)).unwrap();
    let mut synth = HarmonicNoiseSynth::new(SynthConfig::new(sr, hop, 64, 65)).unwrap();
    let distribution = vec![0.1f32; 64];
    let noise = vec![0.01f32; 65];
    let mut resampler = StreamingResampler::new(48000, 16000, hop).unwrap();
    let mut resampled = vec![0.0f32; resampler.output_frames_max()];

    let count = count_allocations(|| {
        for i in 0..20 {
            stft.process_hop(&input, &mut output, |s| s[1] *= 0.5);
            std::hint::black_box(analyzer.process_hop(&input));
            std::hint::black_box(pitch.process_hop(&input));
            std::hint::black_box(loudness.process_hop(&input));
            std::hint::black_box(onset.process_hop(&input));
            synth.process_frame(
                &FrameControls {
                    f0_hz: 100.0 + i as f32,
                    amplitude: 0.3,
                    harmonic_distribution: &distribution,
                    noise_magnitudes: &noise,
                },
                &mut output,
            );
            std::hint::black_box(resampler.process_chunk(&input, &mut resampled));
        }
        pitch.reset();
        loudness.reset();
        onset.reset();
        synth.reset();
        resampler.reset();
        stft.reset();
    });
    assert_eq!(count, 0, "{count} allocations in process/reset");
    // Negative control: the counter does see an allocation.
    let control = count_allocations(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(16));
    });
    assert!(control >= 1, "allocation counter is not counting");
}
