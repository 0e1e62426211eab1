//! Styles A and B → one frame of synthesiser controls in A's layout, blended by the morph.
//!
//! Shared by Continuo Style's voice (one line, one [`DecoderState`]) and the Voice instrument
//! (a state per sounding note, all run through the same loaded models).

use std::sync::Arc;

use super::controls::{BandMap, FrameControlsBuf};
use super::model::{ControlFrames, TimbreModel};
use super::StyleStatus;

/// The models a line is played with: style A, and optionally style B to morph towards.
pub struct VoiceModels {
    /// Style A (morph 0).
    pub a: TimbreModel,
    /// Style B (morph 1); `None` plays A alone whatever the morph.
    pub b: Option<TimbreModel>,
}

/// The recurrent state of one line through styles A and B.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderState {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl DecoderState {
    /// A line at time zero.
    pub fn new(models: &VoiceModels) -> Self {
        Self {
            a: models.a.new_state(),
            b: models
                .b
                .as_ref()
                .map_or_else(Vec::new, TimbreModel::new_state),
        }
    }

    /// Back to time zero.
    pub fn reset(&mut self) {
        self.a.fill(0.0);
        self.b.fill(0.0);
    }
}

/// What a frame's model calls gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCalls {
    /// Every call worked.
    Ok,
    /// Style B failed: the controls are style A's alone.
    StyleBFailed,
    /// Style A failed: the controls are silent.
    StyleAFailed,
}

/// Runs styles A and B for one frame and blends their controls (see the [module docs](self)).
pub struct StyleDecoder {
    frames_a: ControlFrames,
    frames_b: ControlFrames,
    controls: FrameControlsBuf,
    controls_b: FrameControlsBuf,
    /// Style B restated in A's band layout, when the two fill different bands.
    b_in_a: Option<(BandMap, FrameControlsBuf)>,
    status: Arc<StyleStatus>,
    /// What the caller plays when style A fails (for the status message).
    fallback_a: &'static str,
}

impl StyleDecoder {
    /// Buffers sized for `models`; failures are counted in `status`, `fallback_a` saying what
    /// the caller plays when style A fails.
    pub fn new(models: &VoiceModels, status: Arc<StyleStatus>, fallback_a: &'static str) -> Self {
        let (n, m) = (models.a.harmonics(), models.a.noise_bands());
        let controls_b = models.b.as_ref().map_or_else(
            || FrameControlsBuf::new(0, 0),
            |b| FrameControlsBuf::new(b.harmonics(), b.noise_bands()),
        );
        let b_in_a = models.b.as_ref().and_then(|b| {
            (b.band() != models.a.band()).then(|| {
                (
                    BandMap::new(models.a.band(), m, b.band(), b.noise_bands()),
                    FrameControlsBuf::new(b.harmonics(), m),
                )
            })
        });
        Self {
            frames_a: ControlFrames::default(),
            frames_b: ControlFrames::default(),
            controls: FrameControlsBuf::new(n, m),
            controls_b,
            b_in_a,
            status,
            fallback_a,
        }
    }

    /// Runs A (and B, always, so its state is current when the morph moves) on `features` and
    /// leaves the blended controls for `f0_hz` in [`StyleDecoder::controls`]: A's alone when B
    /// fails, silent ones when A fails.
    pub fn run(
        &mut self,
        models: &mut VoiceModels,
        state: &mut DecoderState,
        features: [f32; 2],
        f0_hz: f32,
        morph: f32,
    ) -> ModelCalls {
        clear(&mut self.frames_a);
        if let Err(e) = models.a.run(&[features], &mut state.a, &mut self.frames_a) {
            self.status.model_failed(&e, self.fallback_a);
            self.controls.amplitude = 0.0;
            self.controls.noise.fill(0.0);
            return ModelCalls::StyleAFailed;
        }
        self.controls.copy_frame(&self.frames_a, 0);
        let Some(b) = models.b.as_mut() else {
            return ModelCalls::Ok;
        };
        clear(&mut self.frames_b);
        if let Err(e) = b.run(&[features], &mut state.b, &mut self.frames_b) {
            self.status
                .model_failed(&e, "style B failed: the frame played style A alone");
            return ModelCalls::StyleBFailed;
        }
        self.controls_b.copy_frame(&self.frames_b, 0);
        match self.b_in_a.as_mut() {
            Some((map, mapped)) => {
                map.apply(&self.controls_b, f0_hz, mapped);
                self.controls.blend_towards(mapped, morph);
            }
            None => self.controls.blend_towards(&self.controls_b, morph),
        }
        ModelCalls::Ok
    }

    /// The controls of the last [`StyleDecoder::run`] (in A's layout), for shaping.
    pub fn controls(&mut self) -> &mut FrameControlsBuf {
        &mut self.controls
    }
}

fn clear(frames: &mut ControlFrames) {
    frames.amplitude.clear();
    frames.harmonics.clear();
    frames.noise.clear();
}
