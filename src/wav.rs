//! WAV files for the CLI and the trainer (via `hound`): 16/24/32-bit integer and 32-bit float,
//! any channel count; errors name the file and the problem.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a WAV file could not be used.
#[derive(Debug, Error)]
pub enum WavError {
    /// The file could not be opened or is not a readable WAV file.
    #[error("{path}: cannot read as WAV: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The file holds no audio.
    #[error("{path}: has no audio (0 frames)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The sample format is not one Continuo reads.
    #[error("{path}: unsupported sample format ({bits}-bit {format})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Bits per sample.
        bits: u16,
        /// "integer" or "float".
        format: &'static str,
    },
    /// The file could not be written.
    #[error("{path}: cannot write WAV: {reason}")]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// [`write`] was given audio a WAV file cannot hold as given.
    #[error("{path}: cannot write WAV: {reason}")]
    InvalidInput {
        /// The file.
        path: PathBuf,
        /// What is wrong with the audio or the format, in words.
        reason: String,
    },
}

/// Decoded audio, one `Vec` per channel, samples in −1…1.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples per channel.
    pub channels: Vec<Vec<f32>>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Sample format of the source file, reused when writing a result.
    pub spec: hound::WavSpec,
    /// NaN/Inf samples found in the file (replaced by silence).
    pub non_finite_samples: usize,
}

impl Audio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// The channels averaged into one (what the analysers listen to).
    pub fn mono(&self) -> Vec<f32> {
        let scale = 1.0 / self.channels.len().max(1) as f32;
        (0..self.frames())
            .map(|frame| {
                self.channels
                    .iter()
                    .map(|channel| channel[frame])
                    .sum::<f32>()
                    * scale
            })
            .collect()
    }
}

/// Reads a WAV file. Non-finite float samples become 0 and are counted in
/// [`Audio::non_finite_samples`].
///
/// # Errors
/// Unreadable file, unsupported sample format, or no audio.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    let unreadable = |error: hound::Error| WavError::Unreadable {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let mut reader = hound::WavReader::open(path).map_err(unreadable)?;
    let spec = reader.spec();
    // The header's sample count sizes the buffers below: check it against the bytes the file
    // really has first, so a lying header costs an error, not gigabytes.
    let file_bytes = std::fs::metadata(path)
        .map_err(|error| unreadable(error.into()))?
        .len();
    let declared = u64::from(reader.len());
    let declared_bytes = declared * u64::from(spec.bits_per_sample.div_ceil(8));
    if declared_bytes > file_bytes {
        return Err(WavError::Unreadable {
            path: path.to_owned(),
            reason: format!(
                "the data chunk declares {declared} samples ({declared_bytes} bytes) but the \
                 file has only {file_bytes} bytes"
            ),
        });
    }
    let mut interleaved: Vec<f32> = Vec::with_capacity(declared as usize);
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for sample in reader.samples::<f32>() {
                interleaved.push(sample.map_err(unreadable)?);
            }
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for sample in reader.samples::<i32>() {
                interleaved.push(sample.map_err(unreadable)? as f32 * scale);
            }
        }
        (format, bits) => {
            let format = if format == hound::SampleFormat::Float {
                "float"
            } else {
                "integer"
            };
            return Err(WavError::UnsupportedFormat {
                path: path.to_owned(),
                bits,
                format,
            });
        }
    }
    let channel_count = usize::from(spec.channels.max(1));
    let frames = interleaved.len() / channel_count;
    if frames == 0 {
        return Err(WavError::Empty {
            path: path.to_owned(),
        });
    }
    let mut non_finite_samples = 0;
    let mut channels = vec![Vec::with_capacity(frames); channel_count];
    for frame in interleaved.chunks_exact(channel_count) {
        for (channel, &sample) in channels.iter_mut().zip(frame) {
            if sample.is_finite() {
                channel.push(sample);
            } else {
                non_finite_samples += 1;
                channel.push(0.0);
            }
        }
    }
    Ok(Audio {
        channels,
        sample_rate: spec.sample_rate,
        spec,
        non_finite_samples,
    })
}

/// Writes `channels` with the sample format in `spec` (integer formats are clipped to range).
///
/// # Errors
/// [`WavError::InvalidInput`] when the channels differ in length, there are none or more than
/// 65535, or the format is not one [`read`] takes; [`WavError::Unwritable`] when the file
/// cannot be created or written.
pub fn write(path: &Path, channels: &[Vec<f32>], spec: hound::WavSpec) -> Result<(), WavError> {
    let unwritable = |error: hound::Error| WavError::Unwritable {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let invalid = |reason: String| WavError::InvalidInput {
        path: path.to_owned(),
        reason,
    };
    let lengths: Vec<usize> = channels.iter().map(Vec::len).collect();
    if lengths.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(invalid(format!(
            "the channels differ in length ({lengths:?} samples)"
        )));
    }
    let channel_count = u16::try_from(channels.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            invalid(format!(
                "{} channels (1 to 65535 can be written)",
                channels.len()
            ))
        })?;
    let supported = match spec.sample_format {
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
        hound::SampleFormat::Int => matches!(spec.bits_per_sample, 8 | 16 | 24 | 32),
    };
    if !supported {
        return Err(invalid(format!(
            "{}-bit {:?} samples are not written (8/16/24/32-bit integer or 32-bit float)",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    let spec = hound::WavSpec {
        channels: channel_count,
        ..spec
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(unwritable)?;
    let frames = channels.first().map_or(0, Vec::len);
    for frame in 0..frames {
        for channel in channels {
            let sample = if channel[frame].is_finite() {
                channel[frame]
            } else {
                0.0
            };
            match spec.sample_format {
                hound::SampleFormat::Float => writer.write_sample(sample).map_err(unwritable)?,
                hound::SampleFormat::Int => {
                    let max = ((1u64 << (spec.bits_per_sample - 1)) - 1) as f32;
                    let value = (sample * (max + 1.0)).round().clamp(-max - 1.0, max) as i32;
                    writer.write_sample(value).map_err(unwritable)?
                }
            }
        }
    }
    writer.finalize().map_err(unwritable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_supported_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signal: Vec<f32> = (0..1000).map(|n| (n as f32 * 0.01).sin() * 0.9).collect();
        for (format, bits, tolerance) in [
            (hound::SampleFormat::Int, 16, 1.0 / 32768.0),
            (hound::SampleFormat::Int, 24, 1.0 / 8_388_608.0),
            (hound::SampleFormat::Int, 32, 1e-7),
            (hound::SampleFormat::Float, 32, 0.0),
        ] {
            let path = dir.path().join(format!("{bits}-{format:?}.wav"));
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 44_100,
                bits_per_sample: bits,
                sample_format: format,
            };
            write(&path, &[signal.clone(), signal.clone()], spec).expect("write");
            let audio = read(&path).expect("read");
            assert_eq!(audio.channels.len(), 2);
            assert_eq!(audio.frames(), signal.len());
            let error = audio.channels[1]
                .iter()
                .zip(&signal)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error <= tolerance, "{bits}-bit {format:?}: error {error}");
        }
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.wav");
        assert!(matches!(read(&missing), Err(WavError::Unreadable { .. })));
        let not_wav = dir.path().join("notes.wav");
        std::fs::write(&not_wav, b"this is not a wav file").expect("write");
        let error = read(&not_wav).expect_err("not a WAV");
        assert!(error.to_string().contains("notes.wav"), "{error}");
        let empty = dir.path().join("empty.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write(&empty, &[vec![]], spec).expect("write");
        assert!(matches!(read(&empty), Err(WavError::Empty { .. })));
    }

    #[test]
    fn ragged_channels_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ragged.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // The first channel is the longer one: the old writer indexed the second out of range.
        let error = write(&path, &[vec![0.1; 10], vec![0.1; 4]], spec).expect_err("ragged");
        assert!(matches!(error, WavError::InvalidInput { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("ragged.wav") && text.contains("[10, 4]"),
            "{text}"
        );
        let error = write(&path, &[], spec).expect_err("no channels");
        assert!(error.to_string().contains("0 channels"), "{error}");
    }

    #[test]
    fn a_header_declaring_more_samples_than_the_file_holds_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("liar.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write(&path, &[vec![0.25; 100]], spec).expect("write");
        let mut bytes = std::fs::read(&path).expect("read back");
        // The canonical 44-byte header: the data chunk's length is at bytes 40..44.
        assert_eq!(&bytes[36..40], b"data");
        bytes[40..44].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        std::fs::write(&path, &bytes).expect("rewrite");
        let error = read(&path).expect_err("lying header");
        let text = error.to_string();
        assert!(
            text.contains("liar.wav") && text.contains("declares"),
            "{text}"
        );
    }

    #[test]
    fn non_finite_samples_become_silence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nan.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("create");
        for sample in [0.5, f32::NAN, f32::INFINITY, -0.5] {
            writer.write_sample(sample).expect("sample");
        }
        writer.finalize().expect("finalize");
        let audio = read(&path).expect("read");
        assert_eq!(audio.channels[0], vec![0.5, 0.0, 0.0, -0.5]);
        assert_eq!(audio.non_finite_samples, 2);
    }
}
