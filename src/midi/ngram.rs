//! Count-based baselines for the continuation models' evaluation: a unigram model and an
//! interpolated Kneser–Ney n-gram model (4-gram by default) over token ids.
//!
//! The design bar for a neural continuation model is a held-out perplexity at least 25 % below
//! the 4-gram's on the same split, so both models here are evaluated exactly like the neural
//! one: the first token of every sequence (`BOS` from the tokenizer) is given, and every later
//! token is predicted from all the tokens before it. [`Evaluation`] reports the total
//! negative log-likelihood, perplexity and bits per token.
//!
//! **Smoothing.** [`Unigram`] uses add-one (Laplace) smoothing over the vocabulary.
//! [`NGram`] is interpolated Kneser–Ney (Kneser & Ney, 1995) in the form of Chen & Goodman,
//! "An Empirical Study of Smoothing Techniques for Language Modeling" (1998), eq. 23: the
//! highest order uses raw counts, lower orders use continuation counts (how many distinct tokens
//! precede an n-gram), each order subtracts one absolute discount `D = n1 / (n1 + 2 n2)`
//! (n1, n2: the order's n-grams seen once and twice; Chen & Goodman eq. 26, clamped to
//! 0.05–0.95) and gives the freed mass to the next lower order, down to a uniform distribution
//! over the vocabulary. Contexts never seen fall through to the next order unchanged. Every
//! distribution therefore sums to one over the vocabulary and gives every token a non-zero
//! probability. Sequence starts are padded with a start symbol outside the vocabulary, so the
//! first predictions condition on "start of sequence".

use std::collections::HashMap;

/// A model giving each token a probability after a context.
pub trait TokenModel {
    /// Number of token ids the model distributes probability over.
    fn vocab_size(&self) -> usize;

    /// Natural log of the probability of `token` after `context` (all tokens before it, oldest
    /// first; models use as many as they need). Negative infinity for a token outside the
    /// vocabulary.
    fn log_prob(&self, context: &[u32], token: u32) -> f64;

    /// Scores every token after the first of each sequence; see the [module docs](self).
    fn evaluate(&self, sequences: &[Vec<u32>]) -> Evaluation {
        let mut evaluation = Evaluation::default();
        for sequence in sequences {
            for index in 1..sequence.len() {
                evaluation.nats -= self.log_prob(&sequence[..index], sequence[index]);
                evaluation.tokens += 1;
            }
        }
        evaluation
    }

    /// Perplexity over `sequences`: `exp(mean negative log-likelihood)`.
    fn perplexity(&self, sequences: &[Vec<u32>]) -> f64 {
        self.evaluate(sequences).perplexity()
    }

    /// Mean negative log2-likelihood per predicted token.
    fn bits_per_token(&self, sequences: &[Vec<u32>]) -> f64 {
        self.evaluate(sequences).bits_per_token()
    }
}

/// Totals of an evaluation, mergeable across batches by adding the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Number of predicted tokens.
    pub tokens: usize,
    /// Total negative log-likelihood, in nats.
    pub nats: f64,
}

impl Evaluation {
    /// Mean negative log-likelihood per token in nats (the cross-entropy a trainer reports);
    /// 0 if nothing was predicted.
    pub fn nats_per_token(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.nats / self.tokens as f64
        }
    }

    /// Mean negative log2-likelihood per token.
    pub fn bits_per_token(&self) -> f64 {
        self.nats_per_token() / std::f64::consts::LN_2
    }

    /// `exp(nats_per_token)`; 1 if nothing was predicted.
    pub fn perplexity(&self) -> f64 {
        self.nats_per_token().exp()
    }
}

/// Token frequencies with add-one smoothing: the floor any sequence model must beat.
#[derive(Debug, Clone, PartialEq)]
pub struct Unigram {
    /// Count of each token id among predicted tokens.
    counts: Vec<u64>,
    /// Sum of `counts`.
    total: u64,
}

impl Unigram {
    /// Counts every token after the first of each sequence. The vocabulary is `vocab_size`, or
    /// larger if the sequences hold larger ids.
    pub fn train(sequences: &[Vec<u32>], vocab_size: usize) -> Self {
        let largest = sequences.iter().flatten().map(|&t| t as usize + 1).max();
        let mut counts = vec![0u64; vocab_size.max(largest.unwrap_or(0)).max(1)];
        for sequence in sequences {
            for &token in sequence.iter().skip(1) {
                counts[token as usize] += 1;
            }
        }
        let total = counts.iter().sum();
        Self { counts, total }
    }
}

impl TokenModel for Unigram {
    fn vocab_size(&self) -> usize {
        self.counts.len()
    }

    fn log_prob(&self, _context: &[u32], token: u32) -> f64 {
        match self.counts.get(token as usize) {
            Some(&count) => {
                ((count + 1) as f64 / (self.total + self.counts.len() as u64) as f64).ln()
            }
            None => f64::NEG_INFINITY,
        }
    }
}

/// Bits per token id in a packed n-gram key.
const TOKEN_BITS: u32 = 16;
/// The padding symbol before each sequence (outside every allowed vocabulary).
const START: u32 = (1 << TOKEN_BITS) - 1;

/// Packs up to four token ids into one key; the length is implied by the table it is used in.
fn pack(tokens: &[u32]) -> u64 {
    tokens
        .iter()
        .fold(0u64, |key, &t| (key << TOKEN_BITS) | u64::from(t & START))
}

/// Counts for one order (n-grams of length `k`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Order {
    /// Count of each k-gram (raw at the highest order, continuation counts below).
    counts: HashMap<u64, u64>,
    /// For each (k-1)-token context: (sum of its k-gram counts, number of distinct next tokens).
    contexts: HashMap<u64, (u64, u64)>,
    /// Absolute discount for this order.
    discount: f64,
}

/// Interpolated Kneser–Ney n-gram model over token ids; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use continuo::midi::ngram::{NGram, TokenModel, Unigram};
///
/// let corpus: Vec<Vec<u32>> = (0..20).map(|_| vec![1, 5, 6, 7, 5, 6, 7, 5, 6, 7, 2]).collect();
/// let four_gram = NGram::train(&corpus, 4, 10);
/// let unigram = Unigram::train(&corpus, 10);
/// assert!(four_gram.perplexity(&corpus) < unigram.perplexity(&corpus));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NGram {
    /// `orders[k - 1]` holds the k-grams, k = 1 ..= n.
    orders: Vec<Order>,
    /// Number of token ids.
    vocab_size: usize,
}

impl NGram {
    /// Largest supported order.
    pub const MAX_ORDER: usize = 4;
    /// Largest supported vocabulary.
    pub const MAX_VOCAB_SIZE: usize = START as usize;

    /// Trains an `order`-gram model (1–4) on `sequences`, predicting every token after the
    /// first of each. The vocabulary is `vocab_size`, or larger if the sequences hold larger
    /// ids.
    ///
    /// # Panics
    ///
    /// If `order` is not 1–4 or the vocabulary exceeds [`NGram::MAX_VOCAB_SIZE`] (65,535)
    /// ids, the limits of the packed n-gram keys.
    pub fn train(sequences: &[Vec<u32>], order: usize, vocab_size: usize) -> Self {
        assert!(
            (1..=Self::MAX_ORDER).contains(&order),
            "n-gram order {order} is not 1–{}",
            Self::MAX_ORDER
        );
        let largest = sequences.iter().flatten().map(|&t| t as usize + 1).max();
        let vocab_size = vocab_size.max(largest.unwrap_or(0)).max(1);
        assert!(
            vocab_size <= Self::MAX_VOCAB_SIZE,
            "vocabulary of {vocab_size} ids is above {}",
            Self::MAX_VOCAB_SIZE
        );

        let mut orders = vec![Order::default(); order];
        let mut padded = Vec::new();
        for sequence in sequences.iter().filter(|s| s.len() > 1) {
            padded.clear();
            padded.resize(order - 1, START);
            padded.extend_from_slice(sequence);
            // Predicted tokens: the sequence from its second token.
            for end in order..padded.len() {
                let gram = &padded[end + 1 - order..=end];
                *orders[order - 1].counts.entry(pack(gram)).or_default() += 1;
            }
        }
        // Continuation counts: each distinct (k+1)-gram adds one to its last k tokens.
        for k in (1..order).rev() {
            let higher: Vec<u64> = orders[k].counts.keys().copied().collect();
            let mask = (1u64 << (TOKEN_BITS * k as u32)) - 1;
            for key in higher {
                *orders[k - 1].counts.entry(key & mask).or_default() += 1;
            }
        }
        for order in &mut orders {
            let (mut once, mut twice) = (0u64, 0u64);
            for (&key, &count) in &order.counts {
                let context = order.contexts.entry(key >> TOKEN_BITS).or_default();
                context.0 += count;
                context.1 += 1;
                once += u64::from(count == 1);
                twice += u64::from(count == 2);
            }
            order.discount = if once + twice > 0 {
                (once as f64 / (once + 2 * twice) as f64).clamp(0.05, 0.95)
            } else {
                0.75
            };
        }
        Self { orders, vocab_size }
    }

    /// The model's order n (it conditions on n - 1 tokens).
    pub fn order(&self) -> usize {
        self.orders.len()
    }

    /// Probability of `token` after the n - 1 tokens of `history` (oldest first, `START`
    /// where the sequence had not begun).
    fn prob(&self, history: &[u32], token: u32) -> f64 {
        let n = self.orders.len();
        let mut p = 1.0 / self.vocab_size as f64;
        for (k, order) in (1..=n).zip(&self.orders) {
            let context = &history[n - k..];
            if let Some(&(total, types)) = order.contexts.get(&pack(context)) {
                let key = (pack(context) << TOKEN_BITS) | u64::from(token);
                let count = order.counts.get(&key).copied().unwrap_or(0) as f64;
                let d = order.discount;
                p = ((count - d).max(0.0) + d * types as f64 * p) / total as f64;
            }
        }
        p
    }
}

impl TokenModel for NGram {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn log_prob(&self, context: &[u32], token: u32) -> f64 {
        if token as usize >= self.vocab_size {
            return f64::NEG_INFINITY;
        }
        let n = self.orders.len();
        let mut history = [START; Self::MAX_ORDER];
        let history = &mut history[..n - 1];
        let known = context.len().min(n - 1);
        history[n - 1 - known..].copy_from_slice(&context[context.len() - known..]);
        for t in history.iter_mut() {
            // Out-of-vocabulary context ids must not alias the start symbol.
            if *t as usize >= self.vocab_size && *t != START {
                *t = START - 1;
            }
        }
        self.prob(history, token).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic tokenised corpus: bars built from three repeating motifs, chosen by a
    /// fixed-seed generator, in a 40-token vocabulary.
    fn corpus(seed: u64, sequences: usize) -> Vec<Vec<u32>> {
        let motifs: [&[u32]; 3] = [
            &[3, 4, 20, 30, 35, 6, 22, 30, 35, 8, 24, 30, 36],
            &[3, 4, 19, 31, 35, 8, 23, 31, 37],
            &[
                3, 4, 20, 30, 38, 5, 24, 30, 35, 7, 27, 32, 35, 9, 24, 30, 35,
            ],
        ];
        let mut state = seed;
        (0..sequences)
            .map(|_| {
                let mut sequence = vec![1];
                for _ in 0..12 {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    sequence.extend_from_slice(motifs[(state >> 33) as usize % 3]);
                }
                sequence.push(2);
                sequence
            })
            .collect()
    }

    #[test]
    fn four_gram_beats_unigram_on_held_out_data() {
        let train = corpus(1, 40);
        let test = corpus(2, 10);
        let unigram = Unigram::train(&train, 40);
        let four_gram = NGram::train(&train, 4, 40);
        let (u, f) = (unigram.evaluate(&test), four_gram.evaluate(&test));
        assert_eq!(u.tokens, f.tokens);
        assert!(u.tokens > 1000);
        assert!(
            f.perplexity() < 0.5 * u.perplexity(),
            "4-gram {} vs unigram {}",
            f.perplexity(),
            u.perplexity()
        );
        assert!(f.bits_per_token() < u.bits_per_token());
        assert!((f.bits_per_token() - four_gram.bits_per_token(&test)).abs() < 1e-12);
        assert!((u.perplexity() - 2f64.powf(u.bits_per_token())).abs() < 1e-9);
        // Lower orders sit in between.
        let bigram = NGram::train(&train, 2, 40).perplexity(&test);
        assert!(f.perplexity() < bigram && bigram < u.perplexity());
    }

    #[test]
    fn distributions_sum_to_one() {
        let train = corpus(3, 20);
        let contexts: [&[u32]; 6] = [
            &[],
            &[1],
            &[1, 3, 4],
            &[30, 35, 6, 22],
            &[39, 38, 0],      // never seen
            &[1000, 70000, 2], // out-of-vocabulary ids in the context
        ];
        let models: Vec<Box<dyn TokenModel>> = vec![
            Box::new(Unigram::train(&train, 40)),
            Box::new(NGram::train(&train, 1, 40)),
            Box::new(NGram::train(&train, 3, 40)),
            Box::new(NGram::train(&train, 4, 40)),
        ];
        for model in &models {
            for context in contexts {
                let sum: f64 = (0..model.vocab_size() as u32)
                    .map(|t| model.log_prob(context, t).exp())
                    .sum();
                assert!((sum - 1.0).abs() < 1e-6, "{context:?}: {sum}");
            }
            assert_eq!(model.log_prob(&[1], 40), f64::NEG_INFINITY);
        }
    }

    #[test]
    fn unseen_tokens_get_finite_costs() {
        let model = NGram::train(&corpus(4, 5), 4, 50);
        let odd = vec![vec![1, 45, 46, 47, 2]];
        let evaluation = model.evaluate(&odd);
        assert_eq!(evaluation.tokens, 4);
        assert!(evaluation.nats.is_finite() && evaluation.nats > 0.0);
        assert_eq!(Evaluation::default().perplexity(), 1.0);
        assert_eq!(model.order(), 4);
    }

    #[test]
    fn the_vocabulary_grows_to_the_data() {
        let data = vec![vec![1, 2, 99]];
        assert_eq!(Unigram::train(&data, 10).vocab_size(), 100);
        assert_eq!(NGram::train(&data, 2, 10).vocab_size(), 100);
        assert_eq!(NGram::train(&[], 4, 0).vocab_size(), 1);
        let empty = NGram::train(&[], 4, 10);
        assert!((empty.log_prob(&[1, 2, 3], 4).exp() - 0.1).abs() < 1e-12);
    }
}
