//! Training data: a folder of MIDI files → token sequences (the library tokenizer, so training
//! and serving share one vocabulary) → a deterministic train/held-out split by file → batches.
//!
//! - **Split.** A file is held out when the sha256 of its *file name* (not its path or content)
//!   falls into the first `valid_percent` of 100 buckets, so the split does not depend on the
//!   folder's location, the file order or the seed, and adding files never moves old ones.
//! - **Augmentation.** With `transpose = k`, every training file is encoded at each
//!   transposition from −k to +k semitones that keeps all pitches in 0–127; each epoch picks one
//!   of them per file. Held-out files are only ever used untransposed.
//! - **Batches** ([`epoch_batches`]): truncated back-propagation through time. An epoch's
//!   sequences (shuffled by `(seed, epoch)`) are concatenated and cut into `batch_size`
//!   contiguous streams; batch `i` holds window `i` of every stream, so the trainer can carry
//!   each stream's hidden state from one batch to the next. The carried state matches how the
//!   plugin runs the model (one token per call with the state carried since `BOS`).
//! - **Bad files** are collected as [`Skipped`] with a reason and never abort loading.

use std::path::{Path, PathBuf};

use crate::midi::tokenizer::{EncodeOptions, EventTokenizer, Tokenizer};
use crate::midi::{file, MidiError, Note};
use crate::model::manifest::sha256_bytes;
use serde::{Deserialize, Serialize};

/// Which side of the split a file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Split {
    /// Used for training (and for the n-gram baselines).
    Train,
    /// Held out for evaluation.
    Valid,
}

/// The split of a file, from the sha256 of its file name; see the [module docs](self).
pub fn split_of(file_name: &str, valid_percent: u32) -> Split {
    let digest = sha256_bytes(file_name.as_bytes());
    let bucket = u32::from_str_radix(&digest[..8], 16).unwrap_or(0) % 100;
    if bucket < valid_percent.min(100) {
        Split::Valid
    } else {
        Split::Train
    }
}

/// How a folder becomes a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusOptions {
    /// Percentage of files held out (by file-name hash).
    pub valid_percent: u32,
    /// Largest transposition in semitones for training files (0 = none).
    pub transpose: u8,
    /// Files with fewer melodic notes are skipped as too short.
    pub min_notes: usize,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        Self {
            valid_percent: 10,
            transpose: 0,
            min_notes: 8,
        }
    }
}

/// One usable MIDI file, tokenised.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusFile {
    /// The file.
    pub path: PathBuf,
    /// Its split.
    pub split: Split,
    /// Melodic notes read from it.
    pub notes: usize,
    /// Token sequences: `variants[0]` untransposed, then the training transpositions.
    pub variants: Vec<Vec<u32>>,
}

impl CorpusFile {
    /// The untransposed token sequence (`BOS … EOS`).
    pub fn tokens(&self) -> &[u32] {
        &self.variants[0]
    }
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why, in words (names the file's problem, e.g. "contains only drum notes").
    pub reason: String,
}

/// A tokenised folder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Corpus {
    /// Usable files, sorted by path.
    pub files: Vec<CorpusFile>,
    /// Files that were skipped, sorted by path.
    pub skipped: Vec<Skipped>,
}

impl Corpus {
    /// Files of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &CorpusFile> {
        self.files.iter().filter(move |f| f.split == split)
    }

    /// Untransposed token sequences of one split.
    pub fn sequences(&self, split: Split) -> Vec<Vec<u32>> {
        self.split(split).map(|f| f.tokens().to_vec()).collect()
    }

    /// Every training sequence including transpositions (what the n-gram baseline sees when
    /// it is trained on the same data as the network).
    pub fn augmented_training_sequences(&self) -> Vec<Vec<u32>> {
        self.split(Split::Train)
            .flat_map(|f| f.variants.iter().cloned())
            .collect()
    }

    /// Number of tokens in the untransposed sequences of one split.
    pub fn token_count(&self, split: Split) -> usize {
        self.split(split).map(|f| f.tokens().len()).sum()
    }
}

/// MIDI files (`.mid`, `.midi`, any case) under `dir`, recursively, sorted.
///
/// # Errors
/// If `dir` cannot be listed.
pub fn midi_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    files_with_extensions(dir, &["mid", "midi"])
}

/// Files under `dir` (recursively, sorted) whose extension is one of `extensions`
/// (lower case, compared case-insensitively).
///
/// # Errors
/// If `dir` or a folder below it cannot be listed.
pub fn files_with_extensions(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads the melodic notes of one file and checks it is long enough; the error names the
/// file and the problem.
///
/// # Errors
/// Unreadable, not MIDI, no notes, drums only, or fewer than `min_notes` notes.
pub fn read_notes(path: &Path, min_notes: usize) -> Result<(Vec<Note>, (u8, u8)), String> {
    let song = file::read(path).map_err(|e| crate::model::chain_message(&e))?;
    let notes = song.melodic_notes(None).map_err(|e| match e {
        MidiError::OnlyDrums { .. } => format!("{}: drum-only (channel 10)", path.display()),
        other => other.to_string(),
    })?;
    if notes.len() < min_notes {
        return Err(format!(
            "{}: too short ({} notes, at least {min_notes} needed)",
            path.display(),
            notes.len()
        ));
    }
    Ok((notes, song.time_signature))
}

/// Encodes notes at a transposition, or `None` if a pitch would leave 0–127.
fn encode_transposed(notes: &[Note], options: &EncodeOptions, semitones: i32) -> Option<Vec<u32>> {
    let moved: Option<Vec<Note>> = notes
        .iter()
        .map(|n| {
            let pitch = i32::from(n.pitch) + semitones;
            (0..=127).contains(&pitch).then_some(Note {
                pitch: pitch as u8,
                ..*n
            })
        })
        .collect();
    Some(EventTokenizer::new().encode(&moved?, options))
}

/// Tokenises one file for the corpus.
///
/// # Errors
/// As [`read_notes`].
pub fn load_file(path: &Path, options: &CorpusOptions) -> Result<CorpusFile, String> {
    let (notes, (numerator, denominator)) = read_notes(path, options.min_notes)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let split = split_of(&name, options.valid_percent);
    let encode = EncodeOptions::from_time_signature(numerator, denominator);
    let mut variants = vec![EventTokenizer::new().encode(&notes, &encode)];
    if split == Split::Train {
        let k = i32::from(options.transpose);
        for semitones in (-k..=k).filter(|&s| s != 0) {
            variants.extend(encode_transposed(&notes, &encode, semitones));
        }
    }
    Ok(CorpusFile {
        path: path.to_path_buf(),
        split,
        notes: notes.len(),
        variants,
    })
}

/// Tokenises every MIDI file under `dir`; `on_file` is called after each file (for progress).
///
/// # Errors
/// Only if `dir` cannot be listed; bad files end up in [`Corpus::skipped`].
pub fn load_corpus(
    dir: &Path,
    options: &CorpusOptions,
    mut on_file: impl FnMut(&Path),
) -> std::io::Result<Corpus> {
    let mut corpus = Corpus::default();
    for path in midi_files(dir)? {
        match load_file(&path, options) {
            Ok(file) => corpus.files.push(file),
            Err(reason) => corpus.skipped.push(Skipped {
                path: path.clone(),
                reason,
            }),
        }
        on_file(&path);
    }
    Ok(corpus)
}

/// SplitMix64: a tiny deterministic generator for shuffling (no dependency, stable forever,
/// so a seed means the same batches in every build).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator for `seed`, decorrelated per `stream` (e.g. the epoch).
    pub fn new(seed: u64, stream: u64) -> Self {
        Self::with_stream_multiplier(seed, stream, 0xA076_1D64_78BD_642F)
    }

    /// As [`SplitMix::new`], streams spread by another odd `multiplier` (the timbre trainer
    /// uses its own, so its seeds keep reproducing the shipped models).
    pub fn with_stream_multiplier(seed: u64, stream: u64, multiplier: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(multiplier));
        rng.next_u64();
        rng
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-1, 1)` as f32.
    pub fn symmetric(&mut self) -> f32 {
        (self.unit() * 2.0 - 1.0) as f32
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One training batch: `inputs[b * T + t]` predicts `targets[b * T + t]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Streams in the batch (`B`).
    pub batch_size: usize,
    /// Window length (`T`).
    pub seq_len: usize,
    /// Input token ids, `[B, T]` row-major.
    pub inputs: Vec<i64>,
    /// Next-token targets, `[B, T]` row-major.
    pub targets: Vec<i64>,
}

/// The batches of one epoch; see the [module docs](self). Deterministic in
/// `(sequences, seed, epoch)`.
///
/// `sequences` holds, per training file, its variants (untransposed first).
pub fn epoch_batches(
    sequences: &[&[Vec<u32>]],
    batch_size: usize,
    seq_len: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Batch> {
    let mut rng = SplitMix::new(seed, epoch as u64);
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    rng.shuffle(&mut order);
    let mut stream: Vec<u32> = Vec::new();
    for index in order {
        let variants = sequences[index];
        if variants.is_empty() {
            continue;
        }
        stream.extend_from_slice(&variants[rng.below(variants.len())]);
    }
    let per_stream = stream.len() / batch_size.max(1);
    let windows = per_stream.saturating_sub(1) / seq_len.max(1);
    (0..windows)
        .map(|window| {
            let mut inputs = Vec::with_capacity(batch_size * seq_len);
            let mut targets = Vec::with_capacity(batch_size * seq_len);
            for b in 0..batch_size {
                let start = b * per_stream + window * seq_len;
                inputs.extend(stream[start..start + seq_len].iter().map(|&t| i64::from(t)));
                targets.extend(
                    stream[start + 1..start + seq_len + 1]
                        .iter()
                        .map(|&t| i64::from(t)),
                );
            }
            Batch {
                batch_size,
                seq_len,
                inputs,
                targets,
            }
        })
        .collect()
}

/// Held-out sequences grouped for batched evaluation: each group holds up to `batch_size`
/// sequences of similar length, padded with `PAD` (0) to the longest. Returned as
/// `(batch, max_len, tokens [batch * max_len])`.
pub fn padded_groups(sequences: &[Vec<u32>], batch_size: usize) -> Vec<(usize, usize, Vec<i64>)> {
    let mut order: Vec<&Vec<u32>> = sequences.iter().filter(|s| s.len() > 1).collect();
    order.sort_by_key(|s| s.len());
    order
        .chunks(batch_size.max(1))
        .map(|group| {
            let max_len = group.iter().map(|s| s.len()).max().unwrap_or(0);
            let mut tokens = vec![0i64; group.len() * max_len];
            for (row, sequence) in group.iter().enumerate() {
                for (t, &token) in sequence.iter().enumerate() {
                    tokens[row * max_len + t] = i64::from(token);
                }
            }
            (group.len(), max_len, tokens)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_roughly_proportional() {
        let names: Vec<String> = (0..1000).map(|i| format!("bwv{i}.mid")).collect();
        let valid = names
            .iter()
            .filter(|n| split_of(n, 10) == Split::Valid)
            .count();
        assert!((50..150).contains(&valid), "{valid}");
        assert_eq!(split_of("a.mid", 10), split_of("a.mid", 10));
        assert_eq!(split_of("a.mid", 0), Split::Train);
        assert_eq!(split_of("a.mid", 100), Split::Valid);
    }

    #[test]
    fn batches_are_deterministic_and_shifted_by_one() {
        let files: Vec<Vec<Vec<u32>>> = (0..7)
            .map(|f| vec![(0..50).map(|t| f * 100 + t).collect()])
            .collect();
        let refs: Vec<&[Vec<u32>]> = files.iter().map(|v| v.as_slice()).collect();
        let a = epoch_batches(&refs, 3, 8, 1, 0);
        assert_eq!(a, epoch_batches(&refs, 3, 8, 1, 0));
        assert_ne!(a, epoch_batches(&refs, 3, 8, 1, 1));
        assert_eq!(a.len(), (350 / 3 - 1) / 8);
        for batch in &a {
            assert_eq!(batch.inputs.len(), 24);
            assert_eq!(batch.inputs[1..8], batch.targets[..7]);
        }
        // Consecutive windows of one stream are contiguous.
        assert_eq!(a[0].targets[7], a[1].inputs[0]);
    }

    #[test]
    fn padded_groups_hold_every_sequence() {
        let seqs = vec![vec![1, 5, 2], vec![1, 5, 6, 7, 2], vec![1], vec![1, 2]];
        let groups = padded_groups(&seqs, 2);
        let total: usize = groups.iter().map(|g| g.0).sum();
        assert_eq!(total, 3, "a one-token sequence predicts nothing");
        assert_eq!(groups[0].1, 3);
        assert_eq!(groups[1], (1, 5, vec![1, 5, 6, 7, 2]));
    }
}
