//! The token vocabulary of Continuo Phrase's continuation models, and its encoder and decoder.
//!
//! One implementation serves the trainer and the plugin, so the vocabulary cannot drift between
//! them. A model manifest records [`VOCAB_VERSION`]; any change to the table below, to the grid
//! or to the bins must change that string.
//!
//! # Vocabulary `continuo-event-v1` (316 tokens)
//!
//! | ids | token | meaning |
//! | --- | --- | --- |
//! | 0 | `PAD` | padding for batches; ignored by the decoder |
//! | 1 | `BOS` | start of a sequence |
//! | 2 | `EOS` | end of a sequence; the decoder stops |
//! | 3 | `BAR` | a bar line: the next bar starts |
//! | 4–99 | `POSITION(k)`, k = 0–95 | onset at grid step k within the current bar |
//! | 100–227 | `PITCH(p)`, p = 0–127 | a note of MIDI pitch p starts at the current position |
//! | 228–243 | `VELOCITY(b)`, b = 0–15 | its velocity bin ([`velocity_bin`]) |
//! | 244–315 | `DURATION(d)`, d = 0–71 | its length bin ([`duration_bin`]) |
//!
//! **Grid.** Time is quantised to [`STEPS_PER_BEAT`] = 12 steps per quarter note, the smallest
//! grid that holds both sixteenths (3 steps) and eighth- and sixteenth-note triplets (4 and 2
//! steps). A bar holds at most [`MAX_BAR_STEPS`] = 96 steps (8 quarter notes: 4/4, 3/4, 6/8, 7/8,
//! 12/8 and 8/4 all fit). The bar length is not a token: [`EncodeOptions::beats_per_bar`] and
//! [`DecodeOptions::beats_per_bar`] carry it (default 4/4).
//!
//! **Durations** in steps: bins 0–47 are 1–48 steps exactly (up to one 4/4 bar, every grid
//! value); bins 48–63 are 51–96 steps by 3 (sixteenths, up to two bars); bins 64–71 are 108–192
//! steps by 12 (beats, up to four bars). Longer notes are clamped to 192 steps (16 beats). A
//! length rounds to the nearest bin, ties to the shorter.
//!
//! **Velocities** 1–127 fall into 16 equal bins; a bin decodes to the middle velocity of its
//! range ([`velocity_of_bin`]).
//!
//! **Grammar.** A sequence is
//! `BOS (BAR | POSITION(k) | PITCH(p) VELOCITY(b) DURATION(d))* EOS`, where the first time token
//! is a `BAR`, every note group follows a `POSITION`, positions strictly increase within a bar,
//! and notes at one onset share one `POSITION` and come in ascending pitch. An encoded sequence
//! opens a bar at [`EncodeOptions::start_beat`] and writes one `BAR` per bar line it passes,
//! including empty bars. Channels are not encoded: the decoder puts every note on
//! [`DecodeOptions::channel`].
//!
//! **Why `BAR` + `POSITION` and not `TIME_SHIFT`.** A position names where in the bar a note
//! falls, so metre is explicit (downbeats look alike in every bar) and a model's timing errors do
//! not accumulate: one wrong shift in a time-shift vocabulary displaces every later note, while a
//! wrong position displaces one onset. It also makes constrained sampling simple: the streaming
//! [`DecodeState::is_allowed`] can forbid going back in time. The cost is one `BAR` per empty
//! bar, which is cheap at phrase lengths.
//!
//! **Robustness.** The decoder accepts any `u32` sequence without panicking. Tokens that break
//! a note group (a `BAR` between `PITCH` and `DURATION`, a `VELOCITY` without `PITCH`, an id
//! outside the vocabulary, …) drop the incomplete group. Positions beyond the bar or earlier
//! than the current one are ignored, so emitted onsets never decrease. Everything after `EOS` is
//! ignored. Every emitted note has pitch 0–127, velocity 1–127 and `end_beat > start_beat`.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::Note;

/// Identifies this vocabulary in model manifests. Changes whenever ids, grid or bins change.
pub const VOCAB_VERSION: &str = "continuo-event-v1";

/// Grid steps per quarter note.
pub const STEPS_PER_BEAT: u32 = 12;
/// Most grid steps in one bar (8 quarter notes).
pub const MAX_BAR_STEPS: u32 = 96;
/// Number of velocity bins.
pub const VELOCITY_BINS: u32 = 16;
/// Number of duration bins.
pub const DURATION_BINS: u32 = 72;
/// Longest encodable duration in steps (16 beats); longer notes are clamped to it.
pub const MAX_DURATION_STEPS: u32 = 192;
/// Notes more than this many bars after [`EncodeOptions::start_beat`] are not encoded, which
/// bounds the output length (one `BAR` per bar) for corrupt or huge inputs.
pub const MAX_ENCODED_BARS: i64 = 65_536;

/// Padding.
pub const PAD: u32 = 0;
/// Beginning of sequence.
pub const BOS: u32 = 1;
/// End of sequence.
pub const EOS: u32 = 2;
/// Bar line.
pub const BAR: u32 = 3;
/// Ids of `POSITION(0)` … `POSITION(95)`.
pub const POSITION_TOKENS: Range<u32> = 4..4 + MAX_BAR_STEPS;
/// Ids of `PITCH(0)` … `PITCH(127)`.
pub const PITCH_TOKENS: Range<u32> = POSITION_TOKENS.end..POSITION_TOKENS.end + 128;
/// Ids of `VELOCITY(0)` … `VELOCITY(15)`.
pub const VELOCITY_TOKENS: Range<u32> = PITCH_TOKENS.end..PITCH_TOKENS.end + VELOCITY_BINS;
/// Ids of `DURATION(0)` … `DURATION(71)`.
pub const DURATION_TOKENS: Range<u32> = VELOCITY_TOKENS.end..VELOCITY_TOKENS.end + DURATION_BINS;
/// Number of token ids (316).
pub const VOCAB_SIZE: u32 = DURATION_TOKENS.end;

/// Number of token ids in [`VOCAB_VERSION`] (316).
pub const fn vocab_size() -> usize {
    VOCAB_SIZE as usize
}

/// What a token id means; see the table in the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenKind {
    /// Padding.
    Pad,
    /// Beginning of sequence.
    Bos,
    /// End of sequence.
    Eos,
    /// Bar line.
    Bar,
    /// Onset at this grid step within the bar.
    Position(u32),
    /// Note pitch.
    Pitch(u8),
    /// Velocity bin.
    Velocity(u8),
    /// Duration in grid steps (the bin's value, not its index).
    Duration(u32),
    /// Not an id of this vocabulary.
    Invalid,
}

/// What `token` means, for masking by kind during constrained sampling (key lock masks
/// [`TokenKind::Pitch`] tokens, density control biases [`TokenKind::Position`] and
/// [`TokenKind::Bar`]).
///
/// # Examples
///
/// ```
/// use continuo::midi::tokenizer::{pitch_token, token_kind, TokenKind};
///
/// assert_eq!(token_kind(pitch_token(60)), TokenKind::Pitch(60));
/// assert_eq!(token_kind(1_000_000), TokenKind::Invalid);
/// ```
pub fn token_kind(token: u32) -> TokenKind {
    match token {
        PAD => TokenKind::Pad,
        BOS => TokenKind::Bos,
        EOS => TokenKind::Eos,
        BAR => TokenKind::Bar,
        t if POSITION_TOKENS.contains(&t) => TokenKind::Position(t - POSITION_TOKENS.start),
        t if PITCH_TOKENS.contains(&t) => TokenKind::Pitch((t - PITCH_TOKENS.start) as u8),
        t if VELOCITY_TOKENS.contains(&t) => TokenKind::Velocity((t - VELOCITY_TOKENS.start) as u8),
        t if DURATION_TOKENS.contains(&t) => {
            TokenKind::Duration(steps_of_duration_bin(t - DURATION_TOKENS.start))
        }
        _ => TokenKind::Invalid,
    }
}

/// The `POSITION` token for grid step `step` in the bar (clamped to 0–95).
pub fn position_token(step: u32) -> u32 {
    POSITION_TOKENS.start + step.min(MAX_BAR_STEPS - 1)
}

/// The `PITCH` token for MIDI pitch `pitch` (clamped to 0–127).
pub fn pitch_token(pitch: u8) -> u32 {
    PITCH_TOKENS.start + u32::from(pitch.min(127))
}

/// The `VELOCITY` token for MIDI velocity `velocity`.
pub fn velocity_token(velocity: u8) -> u32 {
    VELOCITY_TOKENS.start + u32::from(velocity_bin(velocity))
}

/// The `DURATION` token for a length of `steps` grid steps.
pub fn duration_token(steps: u32) -> u32 {
    DURATION_TOKENS.start + duration_bin(steps)
}

/// The velocity bin (0–15) of a MIDI velocity; 0 counts as 1, above 127 as 127.
pub fn velocity_bin(velocity: u8) -> u8 {
    let v = u32::from(velocity.clamp(1, 127));
    ((v - 1) * VELOCITY_BINS / 127).min(VELOCITY_BINS - 1) as u8
}

/// The velocity a bin decodes to: the middle of the velocities that fall into it.
pub fn velocity_of_bin(bin: u8) -> u8 {
    let bin = u32::from(bin).min(VELOCITY_BINS - 1);
    // Smallest velocity v with (v - 1) * 16 / 127 >= bin.
    let lowest = |b: u32| (b * 127).div_ceil(VELOCITY_BINS) + 1;
    let low = lowest(bin);
    let high = lowest(bin + 1) - 1;
    ((low + high) / 2) as u8
}

/// A velocity rounded to its bin, as a round trip through tokens returns it.
pub fn quantize_velocity(velocity: u8) -> u8 {
    velocity_of_bin(velocity_bin(velocity))
}

/// The duration bin (0–71) nearest to `steps` grid steps (ties to the shorter; 0 counts as 1).
pub fn duration_bin(steps: u32) -> u32 {
    match steps {
        0..=48 => steps.max(1) - 1,
        49..=96 => 47 + (steps - 48 + 1) / 3,
        97..=MAX_DURATION_STEPS => 63 + (steps - 96 + 5) / 12,
        _ => DURATION_BINS - 1,
    }
}

/// The length in grid steps that duration bin `bin` stands for (bins above 71 count as 71).
pub fn steps_of_duration_bin(bin: u32) -> u32 {
    match bin {
        0..=47 => bin + 1,
        48..=63 => 48 + 3 * (bin - 47),
        _ => 96 + 12 * (bin.min(DURATION_BINS - 1) - 63),
    }
}

/// A length in steps rounded to its bin, as a round trip through tokens returns it.
pub fn quantize_duration_steps(steps: u32) -> u32 {
    steps_of_duration_bin(duration_bin(steps))
}

/// Grid steps in a bar of `beats_per_bar` quarter notes, clamped to 1–[`MAX_BAR_STEPS`]; a
/// non-finite or non-positive value means 4/4.
pub fn bar_steps(beats_per_bar: f64) -> u32 {
    if beats_per_bar.is_finite() && beats_per_bar > 0.0 {
        (beats_per_bar * f64::from(STEPS_PER_BEAT))
            .round()
            .clamp(1.0, f64::from(MAX_BAR_STEPS)) as u32
    } else {
        4 * STEPS_PER_BEAT
    }
}

/// The bar line at or before `beat`, with bars of `beats_per_bar` (as [`bar_steps`] rounds
/// it) counted from beat 0: the [`EncodeOptions::start_beat`] for a phrase starting at `beat`.
///
/// # Examples
///
/// ```
/// use continuo::midi::tokenizer::bar_floor;
///
/// assert_eq!(bar_floor(9.5, 4.0), 8.0);
/// assert_eq!(bar_floor(9.5, 3.0), 9.0);
/// ```
pub fn bar_floor(beat: f64, beats_per_bar: f64) -> f64 {
    let bar_beats = f64::from(bar_steps(beats_per_bar)) / f64::from(STEPS_PER_BEAT);
    let floor = (beat / bar_beats).floor() * bar_beats;
    if floor.is_finite() {
        floor
    } else {
        0.0
    }
}

/// Quarter notes per bar for a time signature, e.g. 3.0 for 6/8 and 3.5 for 7/8. A zero
/// denominator means 4/4.
pub fn beats_per_bar(numerator: u8, denominator: u8) -> f64 {
    if denominator == 0 || numerator == 0 {
        4.0
    } else {
        f64::from(numerator) * 4.0 / f64::from(denominator)
    }
}

/// How [`Tokenizer::encode`] frames the notes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EncodeOptions {
    /// Bar length in quarter notes (4/4 = 4.0, 6/8 = 3.0), for `BAR` and `POSITION` tokens.
    pub beats_per_bar: f64,
    /// A bar line: the first `BAR` token stands here and notes before it are not encoded.
    pub start_beat: f64,
    /// If set, `BAR` tokens (and a final `POSITION`) continue up to this beat after the last
    /// note, so a prompt ends "now" rather than at its last onset.
    pub end_beat: Option<f64>,
    /// Start with `BOS`.
    pub bos: bool,
    /// End with `EOS`; training sequences want it, generation prompts do not.
    pub eos: bool,
}

impl Default for EncodeOptions {
    /// 4/4 from beat 0, with `BOS` and `EOS`.
    fn default() -> Self {
        Self {
            beats_per_bar: 4.0,
            start_beat: 0.0,
            end_beat: None,
            bos: true,
            eos: true,
        }
    }
}

impl EncodeOptions {
    /// Default options with the bar length of a time signature, e.g. `(6, 8)`.
    pub fn from_time_signature(numerator: u8, denominator: u8) -> Self {
        Self {
            beats_per_bar: beats_per_bar(numerator, denominator),
            ..Self::default()
        }
    }
}

/// How [`Tokenizer::decode`] and [`DecodeState`] place notes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodeOptions {
    /// Bar length in quarter notes; must match the encoding.
    pub beats_per_bar: f64,
    /// Beat of the first `BAR` token (the encoder's [`EncodeOptions::start_beat`]).
    pub start_beat: f64,
    /// MIDI channel given to every decoded note.
    pub channel: u8,
}

impl Default for DecodeOptions {
    /// 4/4 from beat 0 on channel 0.
    fn default() -> Self {
        Self {
            beats_per_bar: 4.0,
            start_beat: 0.0,
            channel: 0,
        }
    }
}

/// Turns notes into token ids and back. One vocabulary per implementation, named by
/// [`Tokenizer::version`].
pub trait Tokenizer: Send + Sync {
    /// Encodes notes (any order; channels ignored) as token ids.
    fn encode(&self, notes: &[Note], options: &EncodeOptions) -> Vec<u32>;
    /// Decodes token ids into notes in beats; never panics, skips ill-formed groups.
    fn decode(&self, tokens: &[u32], options: &DecodeOptions) -> Vec<Note>;
    /// Number of token ids, i.e. the model's output width.
    fn vocab_size(&self) -> usize;
    /// The vocabulary's version string, recorded in model manifests.
    fn version(&self) -> &'static str;
}

/// The [`VOCAB_VERSION`] event tokenizer described in the [module docs](self).
///
/// # Examples
///
/// ```
/// use continuo::midi::tokenizer::{self, EventTokenizer, Tokenizer, EncodeOptions};
/// use continuo::midi::Note;
///
/// let tokens = EventTokenizer::new().encode(
///     &[Note::new(60, 100, 0, 0.0, 1.0)],
///     &EncodeOptions::default(),
/// );
/// assert_eq!(
///     tokens,
///     [
///         tokenizer::BOS,
///         tokenizer::BAR,
///         tokenizer::position_token(0),
///         tokenizer::pitch_token(60),
///         tokenizer::velocity_token(100),
///         tokenizer::duration_token(12),
///         tokenizer::EOS,
///     ]
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTokenizer;

impl EventTokenizer {
    /// The tokenizer (it has no state).
    pub const fn new() -> Self {
        Self
    }

    /// A serialisable description of the vocabulary, for model manifests and the trainer.
    pub fn spec(&self) -> VocabSpec {
        let range = |kind: &str, ids: Range<u32>| TokenRange {
            kind: kind.to_owned(),
            first: ids.start,
            count: ids.end - ids.start,
        };
        VocabSpec {
            version: VOCAB_VERSION.to_owned(),
            vocab_size: VOCAB_SIZE,
            steps_per_beat: STEPS_PER_BEAT,
            max_bar_steps: MAX_BAR_STEPS,
            ranges: vec![
                range("pad", PAD..PAD + 1),
                range("bos", BOS..BOS + 1),
                range("eos", EOS..EOS + 1),
                range("bar", BAR..BAR + 1),
                range("position", POSITION_TOKENS),
                range("pitch", PITCH_TOKENS),
                range("velocity", VELOCITY_TOKENS),
                range("duration", DURATION_TOKENS),
            ],
        }
    }
}

/// The vocabulary in data form, written next to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VocabSpec {
    /// [`VOCAB_VERSION`].
    pub version: String,
    /// Number of token ids.
    pub vocab_size: u32,
    /// [`STEPS_PER_BEAT`].
    pub steps_per_beat: u32,
    /// [`MAX_BAR_STEPS`].
    pub max_bar_steps: u32,
    /// The id ranges, in id order.
    pub ranges: Vec<TokenRange>,
}

/// One contiguous range of token ids of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRange {
    /// "pad", "bos", "eos", "bar", "position", "pitch", "velocity" or "duration".
    pub kind: String,
    /// First id.
    pub first: u32,
    /// Number of ids.
    pub count: u32,
}

impl Tokenizer for EventTokenizer {
    fn encode(&self, notes: &[Note], options: &EncodeOptions) -> Vec<u32> {
        let bar = i64::from(bar_steps(options.beats_per_bar));
        let steps_per_beat = f64::from(STEPS_PER_BEAT);
        let to_step = |beat: f64| ((beat - options.start_beat) * steps_per_beat).round();
        let max_step = (MAX_ENCODED_BARS * bar) as f64;

        // (onset step, pitch, duration bin, velocity bin)
        let mut groups: Vec<(i64, u8, u32, u8)> = notes
            .iter()
            .filter(|n| n.pitch <= 127)
            .filter_map(|n| {
                let (start, end) = (to_step(n.start_beat), to_step(n.end_beat));
                (start.is_finite() && end.is_finite() && (0.0..max_step).contains(&start)).then(
                    || {
                        let steps = (end - start).clamp(1.0, f64::from(MAX_DURATION_STEPS + 1));
                        let bin = duration_bin(steps as u32);
                        (start as i64, n.pitch, bin, velocity_bin(n.velocity))
                    },
                )
            })
            .collect();
        groups.sort_unstable();

        let mut tokens = Vec::with_capacity(groups.len() * 4 + 4);
        if options.bos {
            tokens.push(BOS);
        }
        let mut current_bar = -1i64;
        let mut current_position = None;
        let mut move_to = |tokens: &mut Vec<u32>, step: i64| {
            while current_bar < step / bar {
                tokens.push(BAR);
                current_bar += 1;
                current_position = None;
            }
            let position = (step % bar) as u32;
            if current_position != Some(position) {
                tokens.push(position_token(position));
                current_position = Some(position);
            }
        };
        let mut last_onset = -1;
        for &(step, pitch, duration, velocity) in &groups {
            move_to(&mut tokens, step);
            last_onset = step;
            tokens.push(pitch_token(pitch));
            tokens.push(VELOCITY_TOKENS.start + u32::from(velocity));
            tokens.push(DURATION_TOKENS.start + duration);
        }
        if let Some(end) = options.end_beat.map(to_step) {
            if end.is_finite() && end as i64 > last_onset && end < max_step {
                move_to(&mut tokens, end as i64);
            }
        }
        if options.eos {
            tokens.push(EOS);
        }
        tokens
    }

    fn decode(&self, tokens: &[u32], options: &DecodeOptions) -> Vec<Note> {
        let mut state = DecodeState::new(options);
        tokens.iter().filter_map(|&t| state.push(t)).collect()
    }

    fn vocab_size(&self) -> usize {
        vocab_size()
    }

    fn version(&self) -> &'static str {
        VOCAB_VERSION
    }
}

/// A streaming decoder: push tokens one at a time and get each note as soon as its `DURATION`
/// arrives, so the first generated note can be scheduled before the rest is generated.
///
/// To continue a prompt, push the prompt's tokens first (ignoring the notes they return); the
/// time cursor then stands where the prompt ended. [`DecodeState::is_allowed`] tells which
/// tokens keep the sequence well-formed, for grammar-constrained sampling. Pushing never
/// allocates.
///
/// # Examples
///
/// ```
/// use continuo::midi::tokenizer::{self, DecodeOptions, DecodeState};
///
/// let mut state = DecodeState::new(&DecodeOptions { start_beat: 8.0, ..Default::default() });
/// let group = [
///     tokenizer::BAR,
///     tokenizer::position_token(6), // half a beat into the bar
///     tokenizer::pitch_token(64),
///     tokenizer::velocity_token(90),
/// ];
/// for token in group {
///     assert!(state.is_allowed(token));
///     assert_eq!(state.push(token), None);
/// }
/// let note = state.push(tokenizer::duration_token(3)).unwrap();
/// assert_eq!((note.pitch, note.start_beat, note.end_beat), (64, 8.5, 8.75));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeState {
    /// Grid steps per bar, from the options.
    bar_steps: u32,
    /// Beat of the first `BAR`.
    start_beat: f64,
    /// Channel of every note.
    channel: u8,
    /// Index of the current bar; -1 before the first `BAR`.
    bar: i64,
    /// Step within the bar of the last `POSITION`; `None` right after a `BAR`.
    position: Option<u32>,
    /// Pitch of the group being read.
    pitch: Option<u8>,
    /// Velocity bin of the group being read (only with `pitch`).
    velocity_bin: Option<u8>,
    /// An `EOS` was read: everything after is ignored.
    finished: bool,
}

impl DecodeState {
    /// A decoder at the start of a sequence.
    pub fn new(options: &DecodeOptions) -> Self {
        Self {
            bar_steps: bar_steps(options.beats_per_bar),
            start_beat: options.start_beat,
            channel: options.channel.min(15),
            bar: -1,
            position: None,
            pitch: None,
            velocity_bin: None,
            finished: false,
        }
    }

    /// Back to the start of a sequence, keeping the options.
    pub fn reset(&mut self) {
        self.bar = -1;
        self.position = None;
        self.pitch = None;
        self.velocity_bin = None;
        self.finished = false;
    }

    /// Reads one token; returns the note it completes, if any. Never panics.
    pub fn push(&mut self, token: u32) -> Option<Note> {
        if self.finished {
            return None;
        }
        let kind = token_kind(token);
        match kind {
            TokenKind::Pad => return None,
            TokenKind::Velocity(bin) if self.pitch.is_some() && self.velocity_bin.is_none() => {
                self.velocity_bin = Some(bin);
                return None;
            }
            TokenKind::Duration(steps) => {
                let (pitch, bin) = (self.pitch.take(), self.velocity_bin.take());
                return self.note(pitch?, bin?, steps);
            }
            _ => {}
        }
        // Anything else ends (and so drops) an incomplete group.
        self.pitch = None;
        self.velocity_bin = None;
        match kind {
            TokenKind::Eos => self.finished = true,
            TokenKind::Bar => {
                self.bar = self.bar.saturating_add(1);
                self.position = None;
            }
            TokenKind::Position(step)
                if step < self.bar_steps && self.position.is_none_or(|p| step >= p) =>
            {
                self.bar = self.bar.max(0);
                self.position = Some(step);
            }
            TokenKind::Pitch(pitch) => {
                self.bar = self.bar.max(0);
                self.pitch = Some(pitch);
            }
            _ => {}
        }
        None
    }

    fn note(&self, pitch: u8, velocity_bin: u8, steps: u32) -> Option<Note> {
        let start_beat = self.current_beat();
        let end_beat = start_beat + f64::from(steps) / f64::from(STEPS_PER_BEAT);
        (start_beat.is_finite() && end_beat.is_finite() && end_beat > start_beat).then(|| Note {
            pitch,
            velocity: velocity_of_bin(velocity_bin),
            channel: self.channel,
            start_beat,
            end_beat,
        })
    }

    /// The beat a note started now would get: the current bar and position.
    pub fn current_beat(&self) -> f64 {
        let step = self.bar.max(0) as f64 * f64::from(self.bar_steps)
            + f64::from(self.position.unwrap_or(0));
        self.start_beat + step / f64::from(STEPS_PER_BEAT)
    }

    /// Whether an `EOS` has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a note group is half-read (a `PITCH` without its `DURATION` yet).
    pub fn in_group(&self) -> bool {
        self.pitch.is_some()
    }

    /// Whether `token` continues the sequence according to the grammar in the
    /// [module docs](self); a sampler can mask every token for which this is `false`.
    ///
    /// After `EOS` nothing is allowed. Inside a group only the next group token is. Between
    /// groups: `BAR` and `EOS` always; `POSITION(k)` after the current position and inside the
    /// bar, once a `BAR` has been read; `PITCH` once a `POSITION` has been read in this bar.
    /// `PAD` and `BOS` are never generated, so never allowed.
    pub fn is_allowed(&self, token: u32) -> bool {
        if self.finished {
            return false;
        }
        match (token_kind(token), self.pitch, self.velocity_bin) {
            (TokenKind::Velocity(_), Some(_), None) => true,
            (TokenKind::Duration(_), Some(_), Some(_)) => true,
            (_, Some(_), _) => false,
            (TokenKind::Bar | TokenKind::Eos, None, _) => true,
            (TokenKind::Position(step), None, _) => {
                self.bar >= 0 && step < self.bar_steps && self.position.is_none_or(|p| step > p)
            }
            (TokenKind::Pitch(_), None, _) => self.position.is_some(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(tokens: &[u32]) -> Vec<Note> {
        EventTokenizer::new().decode(tokens, &DecodeOptions::default())
    }

    fn sorted(mut notes: Vec<Note>) -> Vec<Note> {
        notes.sort_by(|a, b| {
            a.start_beat
                .total_cmp(&b.start_beat)
                .then(a.pitch.cmp(&b.pitch))
                .then(a.end_beat.total_cmp(&b.end_beat))
                .then(a.velocity.cmp(&b.velocity))
        });
        notes
    }

    fn assert_valid(note: &Note) {
        assert!(note.pitch <= 127, "{note:?}");
        assert!((1..=127).contains(&note.velocity), "{note:?}");
        assert!(note.channel <= 15, "{note:?}");
        assert!(
            note.start_beat.is_finite() && note.end_beat.is_finite(),
            "{note:?}"
        );
        assert!(note.end_beat > note.start_beat, "{note:?}");
    }

    #[test]
    fn layout_is_contiguous_and_versioned() {
        assert_eq!(VOCAB_VERSION, "continuo-event-v1");
        assert_eq!(vocab_size(), 316);
        assert_eq!(EventTokenizer::new().vocab_size(), 316);
        assert_eq!(EventTokenizer::new().version(), VOCAB_VERSION);
        assert_eq!((PAD, BOS, EOS, BAR), (0, 1, 2, 3));
        assert_eq!(POSITION_TOKENS, 4..100);
        assert_eq!(PITCH_TOKENS, 100..228);
        assert_eq!(VELOCITY_TOKENS, 228..244);
        assert_eq!(DURATION_TOKENS, 244..316);

        let spec = EventTokenizer::new().spec();
        let mut next = 0;
        for range in &spec.ranges {
            assert_eq!(range.first, next, "{range:?}");
            next += range.count;
        }
        assert_eq!(next, spec.vocab_size);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<VocabSpec>(&json).unwrap(), spec);

        // Every id has exactly one meaning and the helpers invert token_kind.
        for token in 0..VOCAB_SIZE {
            let back = match token_kind(token) {
                TokenKind::Pad => PAD,
                TokenKind::Bos => BOS,
                TokenKind::Eos => EOS,
                TokenKind::Bar => BAR,
                TokenKind::Position(step) => position_token(step),
                TokenKind::Pitch(pitch) => pitch_token(pitch),
                TokenKind::Velocity(bin) => velocity_token(velocity_of_bin(bin)),
                TokenKind::Duration(steps) => duration_token(steps),
                TokenKind::Invalid => panic!("{token} is in the vocabulary"),
            };
            assert_eq!(back, token);
        }
        assert_eq!(token_kind(VOCAB_SIZE), TokenKind::Invalid);
        assert_eq!(token_kind(u32::MAX), TokenKind::Invalid);
    }

    #[test]
    fn velocity_bins_cover_1_to_127_in_order() {
        let mut previous = 0;
        let mut seen = [false; VELOCITY_BINS as usize];
        for velocity in 1..=127u8 {
            let bin = velocity_bin(velocity);
            assert!(bin >= previous && bin - previous <= 1);
            previous = bin;
            seen[usize::from(bin)] = true;
        }
        assert!(seen.iter().all(|&s| s), "every bin is used");
        for bin in 0..VELOCITY_BINS as u8 {
            assert_eq!(velocity_bin(velocity_of_bin(bin)), bin);
        }
        assert_eq!(velocity_bin(0), 0);
        assert_eq!(velocity_bin(255), 15);
    }

    #[test]
    fn duration_bins_round_to_nearest() {
        for bin in 0..DURATION_BINS {
            assert_eq!(duration_bin(steps_of_duration_bin(bin)), bin);
            if bin > 0 {
                assert!(steps_of_duration_bin(bin) > steps_of_duration_bin(bin - 1));
            }
        }
        assert_eq!(steps_of_duration_bin(DURATION_BINS - 1), MAX_DURATION_STEPS);
        for steps in 1..=400u32 {
            let chosen = quantize_duration_steps(steps);
            let best = (0..DURATION_BINS)
                .map(steps_of_duration_bin)
                .map(|s| s.abs_diff(steps))
                .min()
                .unwrap();
            assert_eq!(chosen.abs_diff(steps), best, "{steps} -> {chosen}");
        }
        assert_eq!(quantize_duration_steps(0), 1);
        assert_eq!(quantize_duration_steps(1000), MAX_DURATION_STEPS);
    }

    #[test]
    fn special_tokens() {
        let tokenizer = EventTokenizer::new();
        let options = EncodeOptions::default();
        assert_eq!(tokenizer.encode(&[], &options), [BOS, EOS]);
        let bare = EncodeOptions {
            bos: false,
            eos: false,
            ..options
        };
        assert_eq!(tokenizer.encode(&[], &bare), Vec::<u32>::new());

        let one = [Note::new(60, 100, 0, 0.0, 1.0)];
        let tokens = tokenizer.encode(&one, &options);
        assert_eq!(tokens.first(), Some(&BOS));
        assert_eq!(tokens.last(), Some(&EOS));
        assert_eq!(tokens.iter().filter(|&&t| t == BOS || t == EOS).count(), 2);

        // PAD anywhere is ignored, even inside a group.
        let group = &tokens[1..tokens.len() - 1];
        let mut padded = vec![PAD, BOS, PAD];
        for &t in group {
            padded.extend([t, PAD]);
        }
        assert_eq!(decode(&padded), decode(&tokens));

        // Nothing after EOS is decoded.
        let mut after = tokens.clone();
        after.extend_from_slice(group);
        assert_eq!(decode(&after).len(), 1);
        let mut state = DecodeState::new(&DecodeOptions::default());
        state.push(EOS);
        assert!(state.is_finished());
        assert!((0..VOCAB_SIZE).all(|t| !state.is_allowed(t)));
        state.reset();
        assert!(state.is_allowed(BAR) && !state.is_allowed(pitch_token(60)));
    }

    /// Chords, same-pitch overlaps, long notes and notes across bar lines, against expectations
    /// worked out by hand.
    #[test]
    fn hand_made_round_trip() {
        let notes = [
            // A C major chord on beat 0, given out of order.
            Note::new(67, 80, 0, 0.0, 2.0),
            Note::new(60, 100, 0, 0.0, 2.0),
            Note::new(64, 90, 0, 0.0, 2.0),
            // Same pitch overlapping itself.
            Note::new(60, 64, 0, 1.0, 3.0),
            // Triplet eighths and a sixteenth.
            Note::new(72, 110, 0, 2.0, 2.0 + 1.0 / 3.0),
            Note::new(74, 110, 0, 2.0 + 1.0 / 3.0, 2.0 + 2.0 / 3.0),
            Note::new(76, 110, 0, 2.75, 3.0),
            // Crossing the bar line at beat 4.
            Note::new(55, 70, 0, 3.5, 5.0),
            // Long notes: 6 beats (exact bin), 10 beats (exact), 20 beats (clamped to 16).
            Note::new(48, 50, 0, 4.0, 10.0),
            Note::new(43, 50, 0, 8.0, 18.0),
            Note::new(36, 50, 0, 12.0, 32.0),
            // Off the grid: rounds to step 13 (1/12 beat after beat 1) and to 2 steps long.
            Note::new(79, 127, 0, 1.0 + 0.09, 1.0 + 0.25),
            // An empty bar (beats 16–20) before this one.
            Note::new(62, 1, 0, 21.0, 21.5),
        ];
        let tokenizer = EventTokenizer::new();
        let tokens = tokenizer.encode(&notes, &EncodeOptions::default());
        assert_eq!(tokens.iter().filter(|&&t| t == BAR).count(), 6);
        assert_eq!(
            tokens[..4],
            [BOS, BAR, position_token(0), pitch_token(60)],
            "the chord shares one POSITION and starts from its lowest pitch"
        );
        let decoded = tokenizer.decode(&tokens, &DecodeOptions::default());

        let v = quantize_velocity;
        let expected = sorted(vec![
            Note::new(60, v(100), 0, 0.0, 2.0),
            Note::new(64, v(90), 0, 0.0, 2.0),
            Note::new(67, v(80), 0, 0.0, 2.0),
            Note::new(60, v(64), 0, 1.0, 3.0),
            Note::new(79, v(127), 0, 13.0 / 12.0, 15.0 / 12.0),
            Note::new(72, v(110), 0, 2.0, 28.0 / 12.0),
            Note::new(74, v(110), 0, 28.0 / 12.0, 32.0 / 12.0),
            Note::new(76, v(110), 0, 2.75, 3.0),
            Note::new(55, v(70), 0, 3.5, 5.0),
            Note::new(48, v(50), 0, 4.0, 10.0),
            Note::new(43, v(50), 0, 8.0, 18.0),
            Note::new(36, v(50), 0, 12.0, 28.0),
            Note::new(62, v(1), 0, 21.0, 21.5),
        ]);
        let decoded = sorted(decoded);
        assert_eq!(decoded.len(), expected.len());
        for (got, want) in decoded.iter().zip(&expected) {
            assert_eq!((got.pitch, got.velocity), (want.pitch, want.velocity));
            assert!(
                (got.start_beat - want.start_beat).abs() < 1e-9,
                "{got:?} {want:?}"
            );
            assert!(
                (got.end_beat - want.end_beat).abs() < 1e-9,
                "{got:?} {want:?}"
            );
        }
    }

    #[test]
    fn time_signatures_and_start_beat() {
        assert_eq!(beats_per_bar(6, 8), 3.0);
        assert_eq!(beats_per_bar(7, 8), 3.5);
        assert_eq!(bar_steps(3.5), 42);
        assert_eq!(bar_steps(100.0), MAX_BAR_STEPS);
        assert_eq!(bar_steps(f64::NAN), 48);
        assert_eq!(bar_floor(7.9, 3.5), 7.0);
        assert_eq!(bar_floor(-0.5, 4.0), -4.0);
        assert_eq!(bar_floor(f64::NAN, 4.0), 0.0);

        let tokenizer = EventTokenizer::new();
        let options = EncodeOptions {
            start_beat: 16.0,
            ..EncodeOptions::from_time_signature(3, 4)
        };
        // Beat 19.5 is half a beat into the second 3/4 bar after beat 16; beat 10 is dropped.
        let notes = [
            Note::new(60, 100, 0, 19.5, 20.0),
            Note::new(61, 100, 0, 10.0, 11.0),
        ];
        let tokens = tokenizer.encode(&notes, &options);
        assert_eq!(
            tokens,
            [
                BOS,
                BAR,
                BAR,
                position_token(6),
                pitch_token(60),
                velocity_token(100),
                duration_token(6),
                EOS
            ]
        );
        let decode_options = DecodeOptions {
            beats_per_bar: 3.0,
            start_beat: 16.0,
            channel: 3,
        };
        let decoded = tokenizer.decode(&tokens, &decode_options);
        assert_eq!(
            decoded,
            [Note::new(60, quantize_velocity(100), 3, 19.5, 20.0)]
        );
    }

    #[test]
    fn end_beat_moves_the_cursor_to_now() {
        let tokenizer = EventTokenizer::new();
        let options = EncodeOptions {
            end_beat: Some(9.5),
            eos: false,
            ..EncodeOptions::default()
        };
        let tokens = tokenizer.encode(&[Note::new(60, 100, 0, 1.0, 2.0)], &options);
        assert_eq!(&tokens[tokens.len() - 3..], [BAR, BAR, position_token(18)]);
        let mut state = DecodeState::new(&DecodeOptions::default());
        for &t in &tokens {
            assert!(t == BOS || state.is_allowed(t), "{t}");
            state.push(t);
        }
        assert_eq!(state.current_beat(), 9.5);
        assert!(state.is_allowed(pitch_token(60)));
        assert!(!state.is_allowed(position_token(18)), "no going back");
    }

    #[test]
    fn streaming_emits_each_note_at_its_duration_token() {
        let notes = [
            Note::new(60, 100, 0, 0.0, 0.5),
            Note::new(64, 100, 0, 0.0, 1.0),
            Note::new(67, 100, 0, 4.5, 5.0),
        ];
        let tokenizer = EventTokenizer::new();
        let tokens = tokenizer.encode(&notes, &EncodeOptions::default());
        let mut state = DecodeState::new(&DecodeOptions::default());
        let mut streamed = Vec::new();
        for (index, &token) in tokens.iter().enumerate() {
            if let Some(note) = state.push(token) {
                assert!(matches!(token_kind(token), TokenKind::Duration(_)));
                streamed.push((index, note));
            }
        }
        // BOS BAR POSITION PITCH VELOCITY DURATION: the first note is out after six tokens.
        assert_eq!(streamed[0].0, 5);
        assert_eq!(streamed.len(), 3);
        let all: Vec<Note> = streamed.into_iter().map(|(_, n)| n).collect();
        assert_eq!(all, tokenizer.decode(&tokens, &DecodeOptions::default()));
    }

    #[test]
    fn ill_formed_groups_are_skipped() {
        let (p, v, d) = (pitch_token(60), velocity_token(100), duration_token(12));
        let lead = [BOS, BAR, position_token(0)];
        let cases: [(&[u32], usize); 9] = [
            (&[p, d], 0),                                           // no velocity
            (&[v, d], 0),                                           // no pitch
            (&[p, v, BAR, d], 0),                                   // bar inside a group
            (&[p, v, v, d], 0),                                     // two velocities
            (&[p, p, v, d], 1),    // the second pitch restarts the group
            (&[p, v, 5000, d], 0), // an id outside the vocabulary
            (&[p, v, d, d], 1),    // a stray duration
            (&[position_token(95), p, v, d], 1), // beyond a 4/4 bar: position ignored
            (&[position_token(12), position_token(6), p, v, d], 1), // backwards: ignored
        ];
        for (body, count) in cases {
            let tokens: Vec<u32> = lead.iter().chain(body).copied().collect();
            let notes = decode(&tokens);
            assert_eq!(notes.len(), count, "{body:?}");
            for note in &notes {
                assert_valid(note);
            }
        }
        let notes = decode(&[BOS, BAR, position_token(12), position_token(6), p, v, d]);
        assert_eq!(
            notes[0].start_beat, 1.0,
            "the backwards position was ignored"
        );
        // Lenient: a group with no time token at all starts at the start.
        assert_eq!(decode(&[p, v, d])[0].start_beat, 0.0);
    }

    #[test]
    fn garbage_never_panics_deterministic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let len = (next() % 400) as usize;
            let tokens: Vec<u32> = (0..len)
                .map(|_| {
                    let r = next();
                    match r % 10 {
                        0 => (r >> 8) as u32, // anything at all
                        1 => EOS,
                        _ => ((r >> 8) % u64::from(VOCAB_SIZE + 4)) as u32,
                    }
                })
                .collect();
            let options = DecodeOptions {
                beats_per_bar: [4.0, 3.0, 0.0, -1.0, 1e9, f64::NAN][round % 6],
                start_beat: [0.0, 1e6, -3.0][round % 3],
                channel: (round % 20) as u8,
            };
            let notes = EventTokenizer::new().decode(&tokens, &options);
            for pair in notes.windows(2) {
                assert!(pair[1].start_beat >= pair[0].start_beat);
            }
            notes.iter().for_each(assert_valid);
        }
    }

    fn grid_notes() -> impl Strategy<Value = (Vec<(u32, u32, u8, u8)>, u32)> {
        // (onset step, length steps, pitch, velocity) over 8 bars, and the bar length in beats.
        (
            prop::collection::vec((0u32..384, 1u32..260, 0u8..=127, 1u8..=127), 0..40),
            prop::sample::select(vec![2u32, 3, 4, 5, 6, 7, 8]),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Notes on the grid come back with their onset exact, their length rounded to its bin
        /// and their velocity to its bin; and the encoding obeys its own grammar.
        #[test]
        fn round_trip_on_the_grid((raw, beats) in grid_notes()) {
            let notes: Vec<Note> = raw
                .iter()
                .map(|&(start, len, pitch, velocity)| {
                    let start_beat = f64::from(start) / 12.0;
                    Note::new(pitch, velocity, 0, start_beat, f64::from(start + len) / 12.0)
                })
                .collect();
            let tokenizer = EventTokenizer::new();
            let encode = EncodeOptions { beats_per_bar: f64::from(beats), ..Default::default() };
            let decode = DecodeOptions { beats_per_bar: f64::from(beats), ..Default::default() };
            let tokens = tokenizer.encode(&notes, &encode);

            let mut state = DecodeState::new(&decode);
            for &token in &tokens[1..] {
                prop_assert!(state.is_allowed(token), "token {} in {:?}", token, tokens);
                state.push(token);
            }

            let expected = sorted(raw
                .iter()
                .map(|&(start, len, pitch, velocity)| {
                    let end = start + quantize_duration_steps(len);
                    Note::new(
                        pitch,
                        quantize_velocity(velocity),
                        0,
                        f64::from(start) / 12.0,
                        f64::from(end) / 12.0,
                    )
                })
                .collect());
            let decoded = sorted(tokenizer.decode(&tokens, &decode));
            prop_assert_eq!(decoded.len(), expected.len());
            for (got, want) in decoded.iter().zip(&expected) {
                prop_assert_eq!((got.pitch, got.velocity), (want.pitch, want.velocity));
                prop_assert!((got.start_beat - want.start_beat).abs() < 1e-9);
                prop_assert!((got.end_beat - want.end_beat).abs() < 1e-9);
            }
        }

        /// Any token sequence decodes without panicking into valid, time-ordered notes.
        #[test]
        fn random_tokens_decode_to_valid_notes(
            tokens in prop::collection::vec(
                prop_oneof![0u32..VOCAB_SIZE, any::<u32>()], 0..300),
            beats in 0.0f64..12.0,
        ) {
            let options = DecodeOptions { beats_per_bar: beats, ..Default::default() };
            let notes = EventTokenizer::new().decode(&tokens, &options);
            for pair in notes.windows(2) {
                prop_assert!(pair[1].start_beat >= pair[0].start_beat);
            }
            for note in &notes {
                prop_assert!(note.pitch <= 127 && (1..=127).contains(&note.velocity));
                prop_assert!(note.end_beat > note.start_beat);
            }
        }
    }
}
