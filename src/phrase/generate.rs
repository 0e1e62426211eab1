//! Continuation generation (worker thread): the phrase so far is tokenized with the library
//! tokenizer, the token model is primed with it, and tokens are sampled one at a time under
//! the musician's constraints until the requested number of bars is filled. Notes are handed
//! out as soon as the streaming decoder completes them, so playback can start before the
//! whole phrase exists.
//!
//! Token model contract (`kind: continuation`): inputs `token` i64 `[1, 1]` and `h0` f32
//! `[layers, 1, hidden]`; outputs `logits` f32 `[1, 1, vocab]` and `h_n` (same shape as `h0`).
//! The manifest's vocabulary must be the library tokenizer's ([`VOCAB_VERSION`]).

use std::path::PathBuf;

use thiserror::Error;

use super::metre::Metre;
use super::texture::{profile, Texture, TextureChoice};
use crate::midi::key::Scale;
use crate::midi::tokenizer::{
    bar_floor, token_kind, DecodeOptions, DecodeState, EncodeOptions, EventTokenizer, TokenKind,
    Tokenizer, BAR, EOS, STEPS_PER_BEAT, VOCAB_VERSION,
};
use crate::midi::Note;
use crate::model::{Dim, LoadedModel, ModelError, Session, TensorView};

/// Why a continuation could not be generated.
#[derive(Debug, Error)]
pub enum GenerateError {
    /// The model's vocabulary is not this build's tokenizer's.
    #[error("{path}: model vocabulary {found} does not match this build's tokenizer ({expected})")]
    Vocabulary {
        /// The model manifest.
        path: PathBuf,
        /// What the manifest says.
        found: String,
        /// What the tokenizer is.
        expected: String,
    },
    /// The model's inputs/outputs are not the token-step contract.
    #[error("{path}: not a token-step model: {reason}")]
    Contract {
        /// The model manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Running the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// No model of that name was found.
    #[error("no continuation model named `{name}` (looked in: {searched}); train one with continuo-train or pass a manifest path")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The directories searched.
        searched: String,
    },
    /// There is nothing to continue.
    #[error("no notes to continue (play or load a phrase first)")]
    NoNotes,
}

/// A token-step model with its recurrent state.
pub struct TokenModel {
    session: Session,
    path: PathBuf,
    description: Option<String>,
    state: Vec<f32>,
    state_shape: Vec<usize>,
    vocab: usize,
}

impl TokenModel {
    /// Wraps a loaded continuation model after checking it follows the token-step contract.
    ///
    /// # Errors
    /// Vocabulary or I/O contract mismatch.
    pub fn new(model: LoadedModel) -> Result<Self, GenerateError> {
        let path = model.paths.manifest.clone();
        let manifest = &model.manifest;
        let expected_vocab = EventTokenizer::new().vocab_size();
        match &manifest.vocabulary {
            Some(v) if v.version == VOCAB_VERSION && v.size as usize == expected_vocab => {}
            other => {
                return Err(GenerateError::Vocabulary {
                    path,
                    found: other.as_ref().map_or("none".into(), |v| {
                        format!("{} ({} tokens)", v.version, v.size)
                    }),
                    expected: format!("{VOCAB_VERSION} ({expected_vocab} tokens)"),
                })
            }
        }
        let contract = |reason: &str| GenerateError::Contract {
            path: path.clone(),
            reason: reason.into(),
        };
        let names: Vec<&str> = manifest
            .inputs
            .iter()
            .map(|spec| spec.name.as_str())
            .collect();
        if names != ["token", "h0"] {
            return Err(contract("inputs must be `token`, `h0`"));
        }
        let outputs: Vec<&str> = manifest
            .outputs
            .iter()
            .map(|spec| spec.name.as_str())
            .collect();
        if outputs != ["logits", "h_n"] {
            return Err(contract("outputs must be `logits`, `h_n`"));
        }
        let state_shape: Option<Vec<usize>> = manifest.inputs[1]
            .shape
            .iter()
            .map(|dim| match dim {
                Dim::Fixed(size) => Some(*size),
                Dim::Symbolic(_) => None,
            })
            .collect();
        let state_shape = state_shape.ok_or_else(|| contract("`h0` must have fixed dimensions"))?;
        Ok(Self {
            state: vec![0.0; state_shape.iter().product()],
            state_shape,
            description: manifest.description.clone(),
            session: model.session,
            path,
            vocab: expected_vocab,
        })
    }

    /// The manifest this model came from.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The manifest's path and, if it has one, its card line.
    pub fn describe(&self) -> String {
        match &self.description {
            Some(description) => format!("{} ({description})", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// Back to the initial (zero) state.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
    }

    /// Feeds one token; writes the next-token logits into `logits` (resized to the vocabulary).
    ///
    /// # Errors
    /// When the runtime fails or returns outputs of the wrong size.
    pub fn step(&mut self, token: u32, logits: &mut Vec<f32>) -> Result<(), GenerateError> {
        let token = [i64::from(token)];
        let inputs = [
            TensorView::i64(&[1, 1], &token),
            TensorView::f32(&self.state_shape, &self.state),
        ];
        let outputs = self.session.run(&inputs)?;
        let (Some(new_logits), Some(new_state)) = (
            outputs.first().and_then(|t| t.as_f32()),
            outputs.get(1).and_then(|t| t.as_f32()),
        ) else {
            return Err(GenerateError::Contract {
                path: self.path.clone(),
                reason: "outputs are not f32".into(),
            });
        };
        if new_logits.len() != self.vocab || new_state.len() != self.state.len() {
            return Err(GenerateError::Contract {
                path: self.path.clone(),
                reason: "output sizes differ from the contract".into(),
            });
        }
        logits.clear();
        logits.extend_from_slice(new_logits);
        self.state.copy_from_slice(new_state);
        Ok(())
    }
}

/// The shipped continuation model for chords (four-part Bach chorales).
pub const DEFAULT_MODEL: &str = "continuo-chorales";
/// The shipped continuation model for melodies (folk and fiddle tunes).
pub const MELODY_MODEL: &str = "continuo-folk";
/// The model choice that picks [`MELODY_MODEL`] or [`DEFAULT_MODEL`] by the texture played.
pub const AUTO_MODEL: &str = "auto";

/// The continuation models a musician can choose from in `dirs`: [`AUTO_MODEL`] first, then
/// the two shipped ones (even when missing, so that choosing them reports why), then the
/// others by name. The order only changes when models are added or removed.
pub fn continuation_choices(dirs: &crate::model::ModelDirs) -> Vec<String> {
    let mut names =
        crate::model::lookup::names_of_kind(dirs, crate::model::ModelKind::Continuation);
    names.retain(|name| ![AUTO_MODEL, DEFAULT_MODEL, MELODY_MODEL].contains(&name.as_str()));
    names.sort();
    for name in [MELODY_MODEL, DEFAULT_MODEL, AUTO_MODEL] {
        names.insert(0, name.to_owned());
    }
    names
}

/// Loads a continuation model given as a manifest path, or by name from `dirs`.
///
/// # Errors
/// Not found (naming where it looked), or any loading error.
pub fn load_token_model(
    name_or_path: &str,
    dirs: &crate::model::ModelDirs,
    backend: crate::model::BackendChoice,
) -> Result<TokenModel, GenerateError> {
    let path = dirs
        .resolve(name_or_path)
        .ok_or_else(|| GenerateError::NotFound {
            name: name_or_path.to_owned(),
            searched: dirs.describe(),
        })?;
    let loaded = crate::model::load_model(&path, crate::model::ModelKind::Continuation, backend)?;
    TokenModel::new(loaded)
}

/// What a model choice loaded: one model for every texture, or for [`AUTO_MODEL`]
/// [`MELODY_MODEL`] for melodies and [`DEFAULT_MODEL`] for chords. At least one is loaded;
/// when only one is, it answers both (a melody still comes out as one line).
pub struct ModelSet {
    melody: Option<TokenModel>,
    chords: Option<TokenModel>,
}

impl ModelSet {
    /// Loads `name_or_path`, or both shipped models for [`AUTO_MODEL`]. Returns the set and,
    /// for an automatic choice with one model missing, why it is missing.
    ///
    /// # Errors
    /// The model (or, automatically, both) could not be loaded.
    pub fn load(
        name_or_path: &str,
        dirs: &crate::model::ModelDirs,
        backend: crate::model::BackendChoice,
    ) -> Result<(Self, Option<GenerateError>), GenerateError> {
        if name_or_path != AUTO_MODEL {
            let model = load_token_model(name_or_path, dirs, backend)?;
            return Ok((Self::one(model), None));
        }
        let melody = load_token_model(MELODY_MODEL, dirs, backend);
        let chords = load_token_model(DEFAULT_MODEL, dirs, backend);
        let (melody, chords, missing) = match (melody, chords) {
            (Ok(melody), Ok(chords)) => (Some(melody), Some(chords), None),
            (Ok(melody), Err(missing)) => (Some(melody), None, Some(missing)),
            (Err(missing), Ok(chords)) => (None, Some(chords), Some(missing)),
            (Err(error), Err(_)) => return Err(error),
        };
        Ok((Self { melody, chords }, missing))
    }

    /// One model for every texture.
    pub fn one(model: TokenModel) -> Self {
        Self {
            melody: None,
            chords: Some(model),
        }
    }

    /// The model that writes `texture` (`None` never happens: every constructor keeps at
    /// least one model).
    pub fn for_texture(&mut self, texture: Texture) -> Option<&mut TokenModel> {
        let (preferred, other) = match texture {
            Texture::Melody => (&mut self.melody, &mut self.chords),
            Texture::Chords => (&mut self.chords, &mut self.melody),
        };
        preferred.as_mut().or(other.as_mut())
    }

    /// The manifests loaded (with their cards), for status lines.
    pub fn describe(&self) -> String {
        match (&self.melody, &self.chords) {
            (Some(melody), Some(chords)) => format!(
                "for melodies {}, for chords {}",
                melody.describe(),
                chords.describe()
            ),
            (Some(model), None) | (None, Some(model)) => model.describe(),
            (None, None) => String::new(),
        }
    }
}

/// What to generate and under which constraints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationSettings {
    /// Bars to generate.
    pub bars: u32,
    /// Quarter notes per bar, as the host counts them (up to [`MAX_BAR_BEATS`](super::metre::MAX_BAR_BEATS); bars longer
    /// than the vocabulary's are cut into equal model bars, see [`Metre`]).
    pub beats_per_bar: f64,
    /// Softmax temperature (> 0; lower is more conservative).
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (0–1].
    pub top_p: f32,
    /// Target notes per beat; `None` leaves density to the model.
    pub density_notes_per_beat: Option<f32>,
    /// Only pitches of this scale (key lock).
    pub scale: Option<Scale>,
    /// Lowest and highest allowed MIDI pitch.
    pub pitch_range: (u8, u8),
    /// Velocity multiplier applied to generated notes.
    pub velocity_scale: f32,
    /// Snap note starts to this grid, in beats (e.g. 0.5 = eighths); `None` keeps the model's
    /// 1/12-beat grid.
    pub quantize_beats: Option<f64>,
    /// MIDI channel of generated notes.
    pub channel: u8,
    /// One line or chords; as played by default. A melody never has two notes sounding.
    pub texture: TextureChoice,
    /// Stay near the input: within its range ± an octave (inside `pitch_range`); unless
    /// `scale` locks the key, prefer its key (out-of-key pitches are discouraged, not banned);
    /// unless `density_notes_per_beat` is set, lean towards its notes per beat.
    pub follow_input: bool,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self {
            bars: 2,
            beats_per_bar: 4.0,
            temperature: 1.0,
            top_p: 0.95,
            density_notes_per_beat: None,
            scale: None,
            pitch_range: (0, 127),
            velocity_scale: 1.0,
            quantize_beats: None,
            channel: 0,
            texture: TextureChoice::AsPlayed,
            follow_input: true,
        }
    }
}

/// A small deterministic PRNG (PCG-XSH-RR 64/32): renders repeat exactly for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = Self(seed.wrapping_add(0x853c_49e6_748f_ea9b));
        rng.next_u32();
        rng
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.0;
        self.0 = old
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
}

/// How far a generation got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationStats {
    /// Tokens sampled.
    pub tokens: usize,
    /// Notes produced.
    pub notes: usize,
}

/// Most tokens one generation may sample (a bound for runaway models).
const MAX_TOKENS_PER_BAR: usize = 256;
/// How strongly density control pushes (logit units per e-fold of density error).
const DENSITY_GAIN: f32 = 1.5;
/// Logit penalty of a pitch outside the input's key when following the input (e^-2 ≈ 1/7 as
/// likely): the model may still colour a line chromatically, but it no longer drifts away.
const OUT_OF_KEY_PENALTY: f32 = 2.0;
/// Logit penalty per e-fold between a note length and the input's median one when following
/// the input: half or double the length costs 1.4 (a quarter as likely).
const DURATION_GAIN: f32 = 2.0;

/// The constraints one generation runs under once the prompt is known.
#[derive(Debug, Clone, Copy)]
struct Constraints {
    settings: GenerationSettings,
    /// Pitches outside it are discouraged by [`OUT_OF_KEY_PENALTY`].
    preferred_scale: Option<Scale>,
    /// Notes per beat the sampling is steered towards (softly, without the hard cap of an
    /// explicit density): the input's, when following it.
    preferred_density: Option<f32>,
    /// Note length (grid steps) the sampling is steered towards: the input's median.
    preferred_duration_steps: Option<f32>,
    monophonic: bool,
}

impl Constraints {
    fn new(settings: &GenerationSettings, prompt: &[Note]) -> Self {
        let mut settings = *settings;
        let played = profile(prompt, settings.texture);
        let (mut preferred_scale, mut preferred_density) = (None, None);
        let mut preferred_duration_steps = None;
        if let Some(played) = played.filter(|_| settings.follow_input) {
            settings.pitch_range = played.pitch_range(settings.pitch_range);
            if settings.scale.is_none() {
                preferred_scale = played.key_scale();
            }
            if settings.density_notes_per_beat.is_none() {
                preferred_density = Some(played.notes_per_beat);
                preferred_duration_steps =
                    Some(played.median_duration_beats * STEPS_PER_BEAT as f32);
            }
        }
        Self {
            settings,
            preferred_scale,
            preferred_density,
            preferred_duration_steps,
            monophonic: played.is_some_and(|p| p.texture == Texture::Melody),
        }
    }

    /// Grammar (the decoder's) plus the musician's constraints. `busy_until`: where the last
    /// generated note ends (a melody starts no note before it).
    fn allows(
        &self,
        token: u32,
        decoder: &DecodeState,
        notes_allowed: bool,
        busy_until: f64,
    ) -> bool {
        if token == EOS || !decoder.is_allowed(token) {
            // The length is ours to decide: never stop early.
            return false;
        }
        let settings = &self.settings;
        match token_kind(token) {
            TokenKind::Pitch(pitch) => {
                notes_allowed
                    && !(self.monophonic && decoder.current_beat() < busy_until - 1e-9)
                    && (settings.pitch_range.0..=settings.pitch_range.1).contains(&pitch)
                    && settings
                        .scale
                        .as_ref()
                        .is_none_or(|scale| scale.contains(pitch))
            }
            _ => true,
        }
    }

    /// Logit bias of `token`: density steering and the preferred key on pitches, the
    /// preferred length on durations.
    fn bias(&self, token: u32, density_bias: f32) -> f32 {
        match token_kind(token) {
            TokenKind::Pitch(pitch) => {
                let out_of_key = self
                    .preferred_scale
                    .is_some_and(|scale| !scale.contains(pitch));
                density_bias - if out_of_key { OUT_OF_KEY_PENALTY } else { 0.0 }
            }
            TokenKind::Duration(steps) => self.preferred_duration_steps.map_or(0.0, |preferred| {
                -DURATION_GAIN * (steps as f32 / preferred.max(1.0)).ln().abs()
            }),
            _ => 0.0,
        }
    }
}

/// Generates one continuation of `prompt` starting at `start_beat` (a bar line) and calls
/// `on_note` with each note as soon as it is complete, in start order.
///
/// # Errors
/// No notes in `prompt`, or the model fails.
pub fn generate(
    model: &mut TokenModel,
    prompt: &[Note],
    start_beat: f64,
    settings: &GenerationSettings,
    rng: &mut Rng,
    mut on_note: impl FnMut(Note),
) -> Result<GenerationStats, GenerateError> {
    let first_beat = prompt
        .iter()
        .map(|note| note.start_beat)
        .fold(f64::INFINITY, f64::min);
    if !first_beat.is_finite() {
        return Err(GenerateError::NoNotes);
    }
    let constraints = Constraints::new(settings, prompt);
    let settings = &constraints.settings;
    let metre = Metre::from_beats(settings.beats_per_bar);
    let bar = metre.model_bar_beats();
    let prompt_start = bar_floor(first_beat, bar);
    let tokenizer = EventTokenizer::new();
    let encode = EncodeOptions {
        beats_per_bar: bar,
        start_beat: prompt_start,
        end_beat: Some(start_beat),
        bos: true,
        eos: false,
    };
    let prompt_tokens = tokenizer.encode(prompt, &encode);
    let mut decoder = DecodeState::new(&DecodeOptions {
        beats_per_bar: bar,
        start_beat: prompt_start,
        channel: settings.channel,
    });

    model.reset();
    let mut logits = Vec::new();
    for &token in &prompt_tokens {
        decoder.push(token);
        model.step(token, &mut logits)?;
    }

    let end_beat = start_beat + f64::from(settings.bars) * metre.bar_beats();
    let max_tokens =
        MAX_TOKENS_PER_BAR * settings.bars.max(1) as usize * metre.model_bars_per_bar() as usize;
    let mut stats = GenerationStats {
        tokens: 0,
        notes: 0,
    };
    let mut weights = Vec::with_capacity(logits.len());
    let mut busy_until = f64::NEG_INFINITY;
    while stats.tokens < max_tokens {
        let elapsed_beats = (decoder.current_beat() - start_beat).max(0.0);
        let pitch_bias = density_bias(
            settings
                .density_notes_per_beat
                .or(constraints.preferred_density),
            stats.notes,
            elapsed_beats,
        );
        let notes_allowed =
            !over_density_budget(settings.density_notes_per_beat, stats.notes, elapsed_beats);
        let Some(token) = sample(
            &logits,
            &mut weights,
            settings,
            |token| constraints.bias(token, pitch_bias),
            |token| constraints.allows(token, &decoder, notes_allowed, busy_until),
            rng,
        ) else {
            break;
        };
        stats.tokens += 1;
        // A bar line at or past the end closes the phrase.
        if token == BAR && bar_floor(decoder.current_beat() + 1e-9, bar) + bar >= end_beat - 1e-9 {
            break;
        }
        if let Some(mut note) = decoder.push(token) {
            if note.start_beat >= end_beat {
                break;
            }
            busy_until = busy_until.max(note.end_beat);
            shape_note(&mut note, settings);
            stats.notes += 1;
            on_note(note);
        }
        model.step(token, &mut logits)?;
    }
    Ok(stats)
}

/// Whether the phrase already holds as many notes as the target density allows by now (with a
/// beat of slack): then no new note may start until time moves on. A hard cap, because a model
/// that is sure of its chords (a four-voice chorale model) overrides any soft bias.
fn over_density_budget(target: Option<f32>, notes: usize, elapsed_beats: f64) -> bool {
    target
        .filter(|t| *t > 0.0)
        .is_some_and(|target| notes as f64 >= f64::from(target) * (elapsed_beats + 1.0))
}

/// Logit bias for `PITCH` tokens that steers the note rate towards the target (mostly useful
/// when the model is sparser than asked; the budget above handles the other side).
fn density_bias(target: Option<f32>, notes: usize, elapsed_beats: f64) -> f32 {
    let Some(target) = target.filter(|t| *t > 0.0) else {
        return 0.0;
    };
    // Count from half a beat in, and treat the start as on target, so the first notes are free.
    let beats = elapsed_beats.max(0.5) as f32;
    let density = (notes as f32 + target * 0.5) / (beats + 0.5);
    (DENSITY_GAIN * (target / density.max(1e-3)).ln()).clamp(-6.0, 6.0)
}

/// Temperature + top-p sampling over the allowed tokens; `None` if nothing is allowed.
fn sample(
    logits: &[f32],
    weights: &mut Vec<(f32, u32)>,
    settings: &GenerationSettings,
    bias: impl Fn(u32) -> f32,
    allowed: impl Fn(u32) -> bool,
    rng: &mut Rng,
) -> Option<u32> {
    let temperature = settings.temperature.max(1e-3);
    weights.clear();
    for (token, &logit) in logits.iter().enumerate() {
        let token = token as u32;
        if !logit.is_finite() || !allowed(token) {
            continue;
        }
        weights.push(((logit + bias(token)) / temperature, token));
    }
    let max = weights
        .iter()
        .map(|(w, _)| *w)
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let mut total = 0.0;
    for (weight, _) in weights.iter_mut() {
        *weight = (*weight - max).exp();
        total += *weight;
    }
    // Nucleus: most likely first, keep up to top_p of the mass (always at least one).
    weights.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let keep_mass = settings.top_p.clamp(1e-6, 1.0) * total;
    let mut kept = 0;
    let mut mass = 0.0;
    for (weight, _) in weights.iter() {
        kept += 1;
        mass += weight;
        if mass >= keep_mass {
            break;
        }
    }
    weights.truncate(kept);
    let mut target = rng.next_f32() * mass;
    for (weight, token) in weights.iter() {
        if target < *weight {
            return Some(*token);
        }
        target -= weight;
    }
    weights.last().map(|(_, token)| *token)
}

/// Applies velocity scaling and grid quantisation to a generated note.
fn shape_note(note: &mut Note, settings: &GenerationSettings) {
    let velocity = (f32::from(note.velocity) * settings.velocity_scale).round();
    note.velocity = velocity.clamp(1.0, 127.0) as u8;
    if let Some(grid) = settings.quantize_beats.filter(|grid| *grid > 0.0) {
        let length = note.end_beat - note.start_beat;
        note.start_beat = (note.start_beat / grid).round() * grid;
        note.end_beat = note.start_beat + length.max(grid * 0.5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_roughly_uniform() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<f32> = (0..10_000).map(|_| a.next_f32()).collect();
        assert!(xs
            .iter()
            .zip((0..10_000).map(|_| b.next_f32()))
            .all(|(x, y)| *x == y));
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
    }

    #[test]
    fn sampling_respects_the_mask_temperature_and_top_p() {
        let settings = GenerationSettings {
            temperature: 1.0,
            top_p: 1.0,
            ..GenerationSettings::default()
        };
        let logits = [0.0, 2.0, 1.0, 5.0];
        let mut weights = Vec::new();
        let mut rng = Rng::new(1);
        // Token 3 is masked out: never chosen.
        for _ in 0..1000 {
            let token = sample(
                &logits,
                &mut weights,
                &settings,
                |_| 0.0,
                |t| t != 3,
                &mut rng,
            );
            assert!(matches!(token, Some(0..=2)));
        }
        // A tiny top-p keeps only the most likely allowed token.
        let greedy = GenerationSettings {
            top_p: 0.01,
            ..settings
        };
        for _ in 0..100 {
            assert_eq!(
                sample(&logits, &mut weights, &greedy, |_| 0.0, |_| true, &mut rng),
                Some(3)
            );
        }
        assert_eq!(
            sample(
                &logits,
                &mut weights,
                &settings,
                |_| 0.0,
                |_| false,
                &mut rng
            ),
            None
        );
    }

    #[test]
    fn density_bias_pushes_towards_the_target() {
        assert_eq!(density_bias(None, 3, 4.0), 0.0);
        assert!(
            density_bias(Some(2.0), 1, 4.0) > 0.5,
            "too sparse: favour notes"
        );
        assert!(
            density_bias(Some(0.5), 12, 4.0) < -0.5,
            "too dense: hold back"
        );
        assert!(
            density_bias(Some(1.0), 4, 4.0).abs() < 0.2,
            "on target: leave alone"
        );
    }
}
