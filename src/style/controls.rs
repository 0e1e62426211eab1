//! The musician's controls of Continuo Style and what they do to a frame of synthesiser
//! controls: pitch shift, input gain, gate, harmonic/noise balance, brightness and the A↔B
//! style morph.
//!
//! The plugin writes [`SharedStyleSettings`] (atomics, so the audio thread only stores) and the
//! worker reads them once per 16 kHz frame, smoothing every value itself ([`SettingsSmoother`])
//! so automation never steps.
//!
//! Every control's range, default and unit is defined once, as a [`ParamSpec`] below: the
//! plugin builds its parameters from it, the CLI validates its arguments with it and the worker
//! clamps what it reads to it.

use atomic_float::AtomicF32;
use std::sync::atomic::Ordering;

use super::voice::GATE_OFF_DB;

/// Range, default, display step and unit of one Style control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// Lowest value, in the units shown to the user.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// Value of a fresh plugin instance (and the CLI's default, unless it says otherwise).
    pub default: f32,
    /// Resolution the plugin shows and snaps to (`None`: continuous).
    pub step: Option<f32>,
    /// Unit suffix as the plugin shows it (with its leading space, if any).
    pub unit: &'static str,
}

impl ParamSpec {
    /// Whether `value` lies in the range (`false` for NaN).
    pub fn contains(&self, value: f32) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `value` clamped into the range.
    pub fn clamp(&self, value: f32) -> f32 {
        value.clamp(self.min, self.max)
    }
}

/// Pitch shift, semitones.
pub const PITCH_SHIFT: ParamSpec = ParamSpec {
    min: -24.0,
    max: 24.0,
    default: 0.0,
    step: Some(0.01),
    unit: " st",
};
/// Octave shift (whole octaves, added to the pitch shift).
pub const OCTAVE: ParamSpec = ParamSpec {
    min: -2.0,
    max: 2.0,
    default: 0.0,
    step: Some(1.0),
    unit: "",
};
/// Gain before analysis, dB.
pub const INPUT_GAIN: ParamSpec = ParamSpec {
    min: -24.0,
    max: 24.0,
    default: 0.0,
    step: Some(0.1),
    unit: " dB",
};
/// Gate threshold, A-weighted dB; the lowest value ([`GATE_OFF_DB`]) is Off.
pub const GATE: ParamSpec = ParamSpec {
    min: GATE_OFF_DB,
    max: -10.0,
    default: -60.0,
    step: Some(0.5),
    unit: " dB",
};
/// Harmonic/noise balance: −1 harmonics only, 0 as modelled, 1 noise only.
pub const BALANCE: ParamSpec = ParamSpec {
    min: -1.0,
    max: 1.0,
    default: 0.0,
    step: Some(0.01),
    unit: "",
};
/// Brightness (tilt of the harmonics): −1 darker … 1 brighter.
pub const BRIGHTNESS: ParamSpec = ParamSpec {
    min: -1.0,
    max: 1.0,
    default: 0.0,
    step: Some(0.01),
    unit: "",
};
/// Morph from style A (0) to style B (1); the plugin shows it in percent.
pub const MORPH: ParamSpec = ParamSpec {
    min: 0.0,
    max: 1.0,
    default: 0.0,
    step: None,
    unit: "%",
};
/// Dry/wet mix (0 dry … 1 wet, linear); the plugin shows it in percent.
pub const MIX: ParamSpec = ParamSpec {
    min: 0.0,
    max: 1.0,
    default: 1.0,
    step: None,
    unit: "%",
};
/// Gain after the mix, dB (plugin only: the CLI writes what the engine produces).
pub const OUTPUT_GAIN: ParamSpec = ParamSpec {
    min: -30.0,
    max: 12.0,
    default: 0.0,
    step: None,
    unit: " dB",
};

/// Control values, in the units shown to the user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleSettings {
    /// Pitch shift in semitones ([`PITCH_SHIFT`]).
    pub pitch_shift_st: f32,
    /// Octave shift ([`OCTAVE`], added to the pitch shift).
    pub octave: f32,
    /// Gain before analysis, dB ([`INPUT_GAIN`]; changes how loud, and so how bright, the
    /// model plays).
    pub input_gain_db: f32,
    /// Below this loudness (A-weighted dB) or when unvoiced, the output fades out ([`GATE`]).
    pub gate_db: f32,
    /// −1 = harmonics only, 0 = as modelled, 1 = noise only ([`BALANCE`]).
    pub balance: f32,
    /// Spectral tilt of the harmonic distribution, −1 (darker) … 1 (brighter) ([`BRIGHTNESS`]).
    pub brightness: f32,
    /// 0 = style A, 1 = style B ([`MORPH`]).
    pub morph: f32,
    /// Bring the player's long-term level to the model's training level before the model hears
    /// it ([`crate::style::features::LevelMatcher`]), so the restyled colour does not depend on
    /// how hot the input was recorded.
    pub auto_level: bool,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            pitch_shift_st: PITCH_SHIFT.default,
            octave: OCTAVE.default,
            input_gain_db: INPUT_GAIN.default,
            gate_db: GATE.default,
            balance: BALANCE.default,
            brightness: BRIGHTNESS.default,
            morph: MORPH.default,
            auto_level: true,
        }
    }
}

impl StyleSettings {
    /// Total shift as a frequency ratio.
    pub fn pitch_ratio(&self) -> f32 {
        ((self.pitch_shift_st + 12.0 * self.octave) / 12.0).exp2()
    }

    /// `(harmonic gain, noise gain)` of the balance: both 1 at the centre, one side fading out
    /// towards either end.
    pub fn balance_gains(&self) -> (f32, f32) {
        let b = BALANCE.clamp(self.balance);
        ((1.0 - b).min(1.0), (1.0 + b).min(1.0))
    }
}

/// Settings shared between the plugin (writer) and the worker (reader), lock-free.
#[derive(Debug)]
pub struct SharedStyleSettings {
    values: [AtomicF32; 8],
}

impl Default for SharedStyleSettings {
    fn default() -> Self {
        let shared = Self {
            values: Default::default(),
        };
        shared.store(&StyleSettings::default());
        shared
    }
}

impl SharedStyleSettings {
    /// Publishes new values (real-time safe: eight relaxed stores).
    pub fn store(&self, s: &StyleSettings) {
        let values = [
            s.pitch_shift_st,
            s.octave,
            s.input_gain_db,
            s.gate_db,
            s.balance,
            s.brightness,
            s.morph,
            if s.auto_level { 1.0 } else { 0.0 },
        ];
        for (slot, v) in self.values.iter().zip(values) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The latest values.
    pub fn load(&self) -> StyleSettings {
        let v = |i: usize| self.values[i].load(Ordering::Relaxed);
        StyleSettings {
            pitch_shift_st: v(0),
            octave: v(1),
            input_gain_db: v(2),
            gate_db: v(3),
            balance: v(4),
            brightness: v(5),
            morph: v(6),
            auto_level: v(7) >= 0.5,
        }
    }
}

/// One-pole smoothing of every setting at frame rate (the gate threshold and octave jump, as a
/// musician expects of a switch-like control; the rest glide).
#[derive(Debug, Clone, Copy)]
pub struct SettingsSmoother {
    current: Option<StyleSettings>,
    /// Fraction of the distance covered per frame.
    coefficient: f32,
}

impl SettingsSmoother {
    /// Smoothing with time constant `time_ms` at `frame_rate_hz`.
    pub fn new(time_ms: f32, frame_rate_hz: f32) -> Self {
        let frames = (time_ms / 1000.0 * frame_rate_hz).max(1e-3);
        Self {
            current: None,
            coefficient: 1.0 - (-1.0 / frames).exp(),
        }
    }

    /// Jumps to the next target on the next call.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Moves towards `target` by one frame and returns the smoothed settings. Non-finite targets
    /// are ignored (the previous value is kept).
    pub fn next(&mut self, target: StyleSettings) -> StyleSettings {
        let Some(current) = self.current.as_mut() else {
            let start = sanitize(target, StyleSettings::default());
            self.current = Some(start);
            return start;
        };
        let target = sanitize(target, *current);
        let k = self.coefficient;
        let glide = |c: &mut f32, t: f32| *c += k * (t - *c);
        glide(&mut current.pitch_shift_st, target.pitch_shift_st);
        glide(&mut current.input_gain_db, target.input_gain_db);
        glide(&mut current.balance, target.balance);
        glide(&mut current.brightness, target.brightness);
        glide(&mut current.morph, target.morph);
        current.octave = target.octave;
        current.gate_db = target.gate_db;
        current.auto_level = target.auto_level;
        *current
    }
}

/// `target` clamped to each control's [`ParamSpec`]; non-finite values keep `fallback`'s.
fn sanitize(target: StyleSettings, fallback: StyleSettings) -> StyleSettings {
    let pick = |t: f32, f: f32, spec: ParamSpec| if t.is_finite() { spec.clamp(t) } else { f };
    StyleSettings {
        pitch_shift_st: pick(target.pitch_shift_st, fallback.pitch_shift_st, PITCH_SHIFT),
        octave: pick(target.octave, fallback.octave, OCTAVE).round(),
        input_gain_db: pick(target.input_gain_db, fallback.input_gain_db, INPUT_GAIN),
        gate_db: pick(target.gate_db, fallback.gate_db, GATE),
        balance: pick(target.balance, fallback.balance, BALANCE),
        brightness: pick(target.brightness, fallback.brightness, BRIGHTNESS),
        morph: pick(target.morph, fallback.morph, MORPH),
        auto_level: target.auto_level,
    }
}

/// One frame of synthesiser controls, owned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameControlsBuf {
    /// Harmonic amplitude (linear).
    pub amplitude: f32,
    /// Harmonic weights.
    pub harmonics: Vec<f32>,
    /// Noise band gains.
    pub noise: Vec<f32>,
}

/// Style B's controls restated in style A's band layout, so two models trained to fill
/// different bands (a full-band model and a v1 model's 8 kHz) can be morphed: the morph blends
/// noise bands index by index, and the synthesiser renders them with A's band.
///
/// B's harmonics at or above its band are silenced (its training never heard them), and its
/// noise curve is sampled at A's band centres (0 above B's band), scaled by
/// `√(A's band / B's band)` so the noise keeps B's level per Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct BandMap {
    b_max_hz: f32,
    /// For each of A's noise bands: B's band below it and the fraction towards the next one,
    /// or `None` above B's band.
    noise: Vec<Option<(usize, f32)>>,
    noise_scale: f32,
}

impl BandMap {
    /// The map from B (`b_bands` noise bands over `b`) to A (`a_bands` over `a`).
    pub fn new(
        a: super::model::SynthBand,
        a_bands: usize,
        b: super::model::SynthBand,
        b_bands: usize,
    ) -> Self {
        let centres = |band: super::model::SynthBand, bands: usize| {
            crate::dsp::synth::noise_band_centres_hz(&crate::dsp::synth::SynthConfig {
                noise_band_spacing: band.spacing,
                max_hz: band.max_hz,
                ..crate::dsp::synth::SynthConfig::new(2.0 * band.max_hz, 1, 0, bands)
            })
        };
        let b_centres = centres(b, b_bands);
        let noise = centres(a, a_bands)
            .into_iter()
            .map(|f| crate::dsp::synth::band_position(&b_centres, b.max_hz, f))
            .collect();
        Self {
            b_max_hz: b.max_hz,
            noise,
            noise_scale: (a.max_hz / b.max_hz).sqrt(),
        }
    }

    /// Writes `b` (B's layout) into `out` (B's harmonics, A's noise bands) for a frame at
    /// `f0_hz`.
    pub fn apply(&self, b: &FrameControlsBuf, f0_hz: f32, out: &mut FrameControlsBuf) {
        out.amplitude = b.amplitude;
        for (k, (o, &h)) in out.harmonics.iter_mut().zip(&b.harmonics).enumerate() {
            *o = if (k + 1) as f32 * f0_hz < self.b_max_hz {
                h
            } else {
                0.0
            };
        }
        for (o, map) in out.noise.iter_mut().zip(&self.noise) {
            *o = match *map {
                None => 0.0,
                Some((j, frac)) => {
                    let lo = b.noise.get(j).copied().unwrap_or(0.0);
                    let hi = b.noise.get(j + 1).copied().unwrap_or(lo);
                    (lo + (hi - lo) * frac) * self.noise_scale
                }
            };
        }
    }
}

impl FrameControlsBuf {
    /// Zeroed controls of the given sizes.
    pub fn new(harmonics: usize, noise_bands: usize) -> Self {
        Self {
            amplitude: 0.0,
            harmonics: vec![0.0; harmonics],
            noise: vec![0.0; noise_bands],
        }
    }

    /// These controls as the synthesiser takes them, at `f0_hz`.
    pub fn frame(&self, f0_hz: f32) -> crate::dsp::synth::FrameControls<'_> {
        crate::dsp::synth::FrameControls {
            f0_hz,
            amplitude: self.amplitude,
            harmonic_distribution: &self.harmonics,
            noise_magnitudes: &self.noise,
        }
    }

    /// Copies frame `i` of `frames` (sizes from `self`).
    pub fn copy_frame(&mut self, frames: &super::model::ControlFrames, i: usize) {
        let (n, m) = (self.harmonics.len(), self.noise.len());
        self.amplitude = frames.amplitude.get(i).copied().unwrap_or(0.0);
        copy_or_zero(
            &mut self.harmonics,
            frames.harmonics.get(i * n..(i + 1) * n),
        );
        copy_or_zero(&mut self.noise, frames.noise.get(i * m..(i + 1) * m));
    }

    /// `self = (1 − t)·self + t·other`, element-wise (the morph). The harmonic distributions are
    /// normalised first so a blend of two distributions is a distribution; sizes may differ
    /// (missing entries count as 0).
    pub fn blend_towards(&mut self, other: &FrameControlsBuf, t: f32) {
        let t = t.clamp(0.0, 1.0);
        if t == 0.0 {
            return;
        }
        let sum_self: f32 = self.harmonics.iter().sum::<f32>().max(1e-12);
        let sum_other: f32 = other.harmonics.iter().sum::<f32>().max(1e-12);
        self.amplitude += t * (other.amplitude - self.amplitude);
        for (k, h) in self.harmonics.iter_mut().enumerate() {
            let o = other.harmonics.get(k).copied().unwrap_or(0.0) / sum_other;
            *h = (1.0 - t) * (*h / sum_self) + t * o;
        }
        for (j, g) in self.noise.iter_mut().enumerate() {
            *g += t * (other.noise.get(j).copied().unwrap_or(0.0) - *g);
        }
    }

    /// Applies balance (harmonic vs noise gain), brightness (harmonic `k` weighted by
    /// `k^(2·brightness)`, noise band `j` by `((j + 1) / M)^brightness`) and a gain on both parts.
    pub fn shape(&mut self, settings: &StyleSettings, gain: f32) {
        let (harmonic_gain, noise_gain) = settings.balance_gains();
        let tilt = settings.brightness;
        let sum: f32 = self.harmonics.iter().sum();
        if tilt != 0.0 {
            for (k, h) in self.harmonics.iter_mut().enumerate() {
                *h *= ((k + 1) as f32).powf(2.0 * tilt);
            }
            // Keep the harmonic part's level: the synth renormalises the distribution anyway.
            let tilted: f32 = self.harmonics.iter().sum();
            if tilted > 0.0 {
                self.harmonics.iter_mut().for_each(|h| *h *= sum / tilted);
            }
            let m = self.noise.len().max(1) as f32;
            for (j, g) in self.noise.iter_mut().enumerate() {
                *g *= ((j + 1) as f32 / m).powf(tilt);
            }
        }
        self.amplitude *= harmonic_gain * gain;
        self.noise.iter_mut().for_each(|g| *g *= noise_gain * gain);
    }
}

fn copy_or_zero(to: &mut [f32], from: Option<&[f32]>) {
    match from {
        Some(from) => to.copy_from_slice(from),
        None => to.fill(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_settings_round_trip() {
        let shared = SharedStyleSettings::default();
        let s = StyleSettings {
            pitch_shift_st: 3.5,
            octave: -1.0,
            input_gain_db: 6.0,
            gate_db: -50.0,
            balance: 0.25,
            brightness: -0.5,
            morph: 0.75,
            auto_level: false,
        };
        shared.store(&s);
        assert_eq!(shared.load(), s);
        let on = StyleSettings {
            auto_level: true,
            ..s
        };
        shared.store(&on);
        assert_eq!(shared.load(), on);
        assert!((s.pitch_ratio() - 2f32.powf(-8.5 / 12.0)).abs() < 1e-6);
    }

    /// The worker clamps to exactly the ranges the plugin and the CLI offer (the plugin's and
    /// the CLI's tests compare theirs with the same [`ParamSpec`]s).
    #[test]
    fn sanitiser_ranges_are_the_param_specs() {
        let settings = |v: f32| StyleSettings {
            pitch_shift_st: v,
            octave: v,
            input_gain_db: v,
            gate_db: v,
            balance: v,
            brightness: v,
            morph: v,
            auto_level: true,
        };
        let specs = |s: StyleSettings| {
            [
                (s.pitch_shift_st, PITCH_SHIFT),
                (s.octave, OCTAVE),
                (s.input_gain_db, INPUT_GAIN),
                (s.gate_db, GATE),
                (s.balance, BALANCE),
                (s.brightness, BRIGHTNESS),
                (s.morph, MORPH),
            ]
        };
        let fallback = StyleSettings::default();
        for (value, spec) in specs(sanitize(settings(1e6), fallback)) {
            assert_eq!(value, spec.max, "{spec:?}");
        }
        for (value, spec) in specs(sanitize(settings(-1e6), fallback)) {
            assert_eq!(value, spec.min, "{spec:?}");
        }
        for (value, spec) in specs(fallback) {
            assert_eq!(value, spec.default, "{spec:?}");
        }
    }

    #[test]
    fn smoother_glides_and_ignores_non_finite_targets() {
        let mut smoother = SettingsSmoother::new(20.0, 250.0);
        let first = smoother.next(StyleSettings::default());
        assert_eq!(first, StyleSettings::default());
        let target = StyleSettings {
            morph: 1.0,
            ..Default::default()
        };
        let step = smoother.next(target);
        assert!(step.morph > 0.0 && step.morph < 0.5, "{step:?}");
        let after_nan = smoother.next(StyleSettings {
            morph: f32::NAN,
            ..target
        });
        assert!(after_nan.morph.is_finite() && after_nan.morph >= step.morph);
        let settled = (0..200).fold(after_nan, |_, _| smoother.next(target));
        assert!((settled.morph - 1.0).abs() < 1e-3);
    }

    #[test]
    fn blend_is_a_distribution_and_hits_both_ends() {
        let a = FrameControlsBuf {
            amplitude: 1.0,
            harmonics: vec![2.0, 0.0],
            noise: vec![0.0, 1.0],
        };
        let b = FrameControlsBuf {
            amplitude: 3.0,
            harmonics: vec![0.0, 1.0],
            noise: vec![1.0, 0.0],
        };
        let mut mid = a.clone();
        mid.blend_towards(&b, 0.5);
        assert_eq!(mid.amplitude, 2.0);
        assert_eq!(mid.harmonics, vec![0.5, 0.5]);
        assert_eq!(mid.noise, vec![0.5, 0.5]);
        let mut end = a.clone();
        end.blend_towards(&b, 1.0);
        assert_eq!(end.harmonics, vec![0.0, 1.0]);
        assert_eq!(end.amplitude, 3.0);
    }

    #[test]
    fn balance_and_brightness_shape_as_labelled() {
        let base = FrameControlsBuf {
            amplitude: 1.0,
            harmonics: vec![0.5, 0.5],
            noise: vec![1.0, 1.0],
        };
        let shaped = |balance, brightness| {
            let mut c = base.clone();
            c.shape(
                &StyleSettings {
                    balance,
                    brightness,
                    ..Default::default()
                },
                1.0,
            );
            c
        };
        assert_eq!(shaped(0.0, 0.0), base);
        let harmonic_only = shaped(-1.0, 0.0);
        assert_eq!(harmonic_only.amplitude, 1.0);
        assert!(harmonic_only.noise.iter().all(|&g| g == 0.0));
        let noise_only = shaped(1.0, 0.0);
        assert_eq!(noise_only.amplitude, 0.0);
        assert_eq!(noise_only.noise, base.noise);
        let bright = shaped(0.0, 1.0);
        assert!(bright.harmonics[1] > bright.harmonics[0]);
        let dark = shaped(0.0, -1.0);
        assert!(dark.harmonics[1] < dark.harmonics[0]);
        assert!((dark.harmonics.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_v1_style_b_is_restated_in_a_full_band_layout() {
        use crate::dsp::synth::NoiseBandSpacing;
        use crate::style::model::SynthBand;
        let full = SynthBand {
            max_hz: 24_000.0,
            spacing: NoiseBandSpacing::Mel,
        };
        let v1 = SynthBand {
            max_hz: 8_000.0,
            spacing: NoiseBandSpacing::Linear,
        };
        let map = BandMap::new(full, 64, v1, 32);
        let mut b = FrameControlsBuf::new(32, 32);
        b.amplitude = 0.7;
        b.harmonics.fill(1.0);
        b.noise.fill(0.2);
        let mut out = FrameControlsBuf::new(32, 64);
        map.apply(&b, 1_000.0, &mut out);
        assert_eq!(out.amplitude, 0.7);
        // Harmonics 1..=7 are below B's 8 kHz; the 8th and above are silent.
        assert!(out.harmonics[..7].iter().all(|&h| h == 1.0));
        assert!(out.harmonics[7..].iter().all(|&h| h == 0.0));
        // A's bands inside 8 kHz carry B's flat curve at B's level per Hz; above it, nothing.
        let centres = crate::dsp::synth::noise_band_centres_hz(&crate::dsp::synth::SynthConfig {
            noise_band_spacing: NoiseBandSpacing::Mel,
            max_hz: 24_000.0,
            ..crate::dsp::synth::SynthConfig::new(48_000.0, 192, 0, 64)
        });
        for (c, &g) in centres.iter().zip(&out.noise) {
            let want = if *c <= 8_000.0 {
                0.2 * 3f32.sqrt()
            } else {
                0.0
            };
            assert!((g - want).abs() < 1e-5, "band at {c} Hz: {g} vs {want}");
        }
    }
}
