//! `continuo-train check DIR`: what a folder holds for training, file by file.
//!
//! MIDI files are read with the library reader and judged as the continuation trainer would
//! (unreadable, empty, drum-only, too short); WAV files (for timbre training) are opened with
//! `hound` and reported with sample rate, channels and duration (unreadable, empty, too short).

use std::path::{Path, PathBuf};

use crate::midi::file;
use serde::{Deserialize, Serialize};

use super::data::{files_with_extensions, read_notes};

/// Shortest WAV file that counts as usable, seconds.
pub const MIN_WAV_SECONDS: f64 = 1.0;

/// One file's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheck {
    /// The file.
    pub path: PathBuf,
    /// Duration in seconds, when readable.
    pub seconds: Option<f64>,
    /// Melodic notes (MIDI) or sample rate in Hz and channels (WAV), in words.
    pub detail: String,
    /// Why the file cannot be used; `None` when it can.
    pub problem: Option<String>,
}

impl FileCheck {
    /// Whether training can use the file.
    pub fn usable(&self) -> bool {
        self.problem.is_none()
    }
}

/// Everything found under a folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderCheck {
    /// MIDI files, sorted.
    pub midi: Vec<FileCheck>,
    /// WAV files, sorted.
    pub wav: Vec<FileCheck>,
}

impl FolderCheck {
    /// Usable MIDI files.
    pub fn usable_midi(&self) -> usize {
        self.midi.iter().filter(|f| f.usable()).count()
    }

    /// Usable WAV files.
    pub fn usable_wav(&self) -> usize {
        self.wav.iter().filter(|f| f.usable()).count()
    }

    /// Whether anything at all can be trained on.
    pub fn anything_usable(&self) -> bool {
        self.usable_midi() + self.usable_wav() > 0
    }

    /// Total duration of usable files of one list, seconds.
    pub fn usable_seconds(files: &[FileCheck]) -> f64 {
        files
            .iter()
            .filter(|f| f.usable())
            .filter_map(|f| f.seconds)
            .fold(0.0, |total, s| total + s)
    }
}

/// Checks one MIDI file.
pub fn check_midi(path: &Path, min_notes: usize) -> FileCheck {
    let seconds = file::read(path)
        .ok()
        .map(|song| song.tempo_map.seconds_at(song.end_beat()));
    match read_notes(path, min_notes) {
        Ok((notes, (num, den))) => FileCheck {
            path: path.to_path_buf(),
            seconds,
            detail: format!("{} melodic notes, {num}/{den}", notes.len()),
            problem: None,
        },
        Err(problem) => FileCheck {
            path: path.to_path_buf(),
            seconds,
            detail: String::new(),
            problem: Some(problem),
        },
    }
}

/// Checks one WAV file.
pub fn check_wav(path: &Path) -> FileCheck {
    let fail = |problem: String| FileCheck {
        path: path.to_path_buf(),
        seconds: None,
        detail: String::new(),
        problem: Some(format!("{}: {problem}", path.display())),
    };
    let reader = match hound::WavReader::open(path) {
        Ok(reader) => reader,
        Err(e) => return fail(format!("unreadable WAV: {e}")),
    };
    let spec = reader.spec();
    let frames = reader.duration();
    let seconds = f64::from(frames) / f64::from(spec.sample_rate.max(1));
    let detail = format!(
        "{} Hz, {} channel(s), {}-bit {:?}",
        spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
    );
    let problem = if frames == 0 {
        Some(format!("{}: empty (no samples)", path.display()))
    } else if seconds < MIN_WAV_SECONDS {
        Some(format!(
            "{}: too short ({seconds:.2} s, at least {MIN_WAV_SECONDS} s needed)",
            path.display()
        ))
    } else {
        None
    };
    FileCheck {
        path: path.to_path_buf(),
        seconds: Some(seconds),
        detail,
        problem,
    }
}

/// Checks every MIDI and WAV file under `dir`; `on_file` is called after each (progress).
///
/// # Errors
/// If `dir` cannot be listed.
pub fn check_folder(
    dir: &Path,
    min_notes: usize,
    mut on_file: impl FnMut(&Path),
) -> std::io::Result<FolderCheck> {
    let mut result = FolderCheck::default();
    for path in files_with_extensions(dir, &["mid", "midi"])? {
        result.midi.push(check_midi(&path, min_notes));
        on_file(&path);
    }
    for path in files_with_extensions(dir, &["wav", "wave"])? {
        result.wav.push(check_wav(&path));
        on_file(&path);
    }
    Ok(result)
}
