//! Held-out metrics: the exported step model (run through `crate::model`, exactly as the
//! plugin runs it) against the library's unigram and 4-gram baselines on the same split.
//!
//! Every model is scored the same way as [`crate::midi::ngram::TokenModel::evaluate`]: the
//! first token of each sequence (`BOS`) is given, every later token is predicted from all
//! tokens before it (the step model carries its state from zeros at `BOS`). Perplexity is
//! `exp(mean NLL)`, bits/token `mean NLL / ln 2`.

use std::time::Instant;

use crate::midi::ngram::{Evaluation, NGram, TokenModel, Unigram};
use crate::model::{Session, TensorView};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The design bar: the model's held-out perplexity must be this fraction below the 4-gram's.
pub const QUALITY_BAR: f64 = 0.25;

/// Scores of the three models on one held-out set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// The neural model.
    pub model: Evaluation,
    /// Add-one unigram trained on the training split.
    pub unigram: Evaluation,
    /// Kneser–Ney 4-gram trained on the training split (the same sequences the network saw,
    /// transpositions included when augmentation is on; the better of with/without is kept).
    pub four_gram: Evaluation,
}

impl HeldOut {
    /// `1 − ppl(model) / ppl(4-gram)`: 0.25 means 25 % below the 4-gram.
    pub fn improvement_over_four_gram(&self) -> f64 {
        1.0 - self.model.perplexity() / self.four_gram.perplexity()
    }

    /// Whether the model meets [`QUALITY_BAR`].
    pub fn meets_bar(&self) -> bool {
        self.improvement_over_four_gram() >= QUALITY_BAR
    }

    /// Metrics for the manifest, by name.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        vec![
            ("perplexity".into(), self.model.perplexity()),
            ("bits_per_token".into(), self.model.bits_per_token()),
            ("unigram_perplexity".into(), self.unigram.perplexity()),
            (
                "unigram_bits_per_token".into(),
                self.unigram.bits_per_token(),
            ),
            ("four_gram_perplexity".into(), self.four_gram.perplexity()),
            (
                "four_gram_bits_per_token".into(),
                self.four_gram.bits_per_token(),
            ),
            (
                "improvement_over_four_gram".into(),
                self.improvement_over_four_gram(),
            ),
            ("held_out_tokens".into(), self.model.tokens as f64),
        ]
    }
}

/// Unigram and 4-gram scores on `held_out`. `training` are the training sequences; with
/// `augmented` (transposed copies) the 4-gram is trained both ways and the better one kept, so
/// the baseline is never handicapped by the network's augmentation.
pub fn baselines(
    training: &[Vec<u32>],
    augmented: Option<&[Vec<u32>]>,
    held_out: &[Vec<u32>],
    vocab_size: usize,
) -> (Evaluation, Evaluation) {
    let unigram = Unigram::train(training, vocab_size).evaluate(held_out);
    let mut four_gram = NGram::train(training, 4, vocab_size).evaluate(held_out);
    if let Some(augmented) = augmented {
        let other = NGram::train(augmented, 4, vocab_size).evaluate(held_out);
        if other.perplexity() < four_gram.perplexity() {
            four_gram = other;
        }
    }
    (unigram, four_gram)
}

/// `log p(target)` from logits, in f64 (stable log-sum-exp).
pub fn log_prob(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[target] as f64 - max - sum.ln()
}

/// Scores a step model session (inputs `token`, `h0` `[L, 1, H]`; outputs `logits`, `h_n`)
/// over `sequences`, and measures its speed.
///
/// Returns the evaluation and tokens per second (model calls only).
///
/// # Errors
/// If the session fails or returns outputs of the wrong type.
pub fn evaluate_session(
    session: &mut Session,
    state_shape: [usize; 3],
    sequences: &[Vec<u32>],
    mut on_sequence: impl FnMut(),
) -> Result<(Evaluation, f64)> {
    let mut evaluation = Evaluation::default();
    let mut busy = 0.0f64;
    let zeros = vec![0.0f32; state_shape.iter().product()];
    for sequence in sequences {
        let mut state = zeros.clone();
        for window in sequence.windows(2) {
            let token = [i64::from(window[0])];
            let start = Instant::now();
            let out = session.run(&[
                TensorView::i64(&[1, 1], &token),
                TensorView::f32(&state_shape, &state),
            ])?;
            busy += start.elapsed().as_secs_f64();
            let logits = out[0].as_f32().context("logits are not f32")?;
            anyhow::ensure!(
                (window[1] as usize) < logits.len(),
                "token {} is outside the model's {} logits",
                window[1],
                logits.len()
            );
            evaluation.nats -= log_prob(logits, window[1] as usize);
            evaluation.tokens += 1;
            state.copy_from_slice(out[1].as_f32().context("h_n is not f32")?);
        }
        on_sequence();
    }
    let tokens_per_second = if busy > 0.0 {
        evaluation.tokens as f64 / busy
    } else {
        0.0
    };
    Ok((evaluation, tokens_per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_is_a_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let total: f64 = (0..3).map(|i| log_prob(&logits, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(log_prob(&[1000.0, 0.0], 0).abs() < 1e-12, "no overflow");
    }

    #[test]
    fn improvement_is_relative_to_the_four_gram() {
        let e = |ppl: f64| Evaluation {
            tokens: 10,
            nats: 10.0 * ppl.ln(),
        };
        let h = HeldOut {
            model: e(6.0),
            unigram: e(50.0),
            four_gram: e(8.0),
        };
        assert!((h.improvement_over_four_gram() - 0.25).abs() < 1e-9);
        let better = HeldOut { model: e(5.9), ..h };
        assert!(better.meets_bar());
        let worse = HeldOut { model: e(6.1), ..h };
        assert!(!worse.meets_bar());
    }
}
