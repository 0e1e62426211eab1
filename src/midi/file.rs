//! Standard MIDI files: reading type 0 and type 1 files into notes in beats, and writing notes
//! back as a type 1 file.
//!
//! Reading follows the SMF 1.0 specification with the leniency real files need:
//! - Running status is handled by [`midly`].
//! - A note-on with velocity 0 is a note-off.
//! - A note-on for a pitch already sounding on the same channel ends the sounding note first
//!   (the same rule as the plugin's phrase history), so overlapping same-pitch notes never
//!   produce zero-length or crossed notes. A note-off with nothing sounding is ignored.
//! - Notes still sounding when their track ends last until the track's end; zero-length notes
//!   are dropped.
//! - Each file track is split by MIDI channel into [`Track`]s, so a type 0 file (every channel in
//!   one track) still separates drums (channel 10, index 9) from melodic parts.
//! - Tempo events from every track build one [`TempoMap`]. The time signature is the first one
//!   at tick 0 (4/4 if none).
//! - Files whose division is SMPTE time code rather than ticks per quarter note are rejected
//!   with [`MidiError::SmpteUnsupported`]: they are rare in musical material and their beats
//!   would depend on tempo events that SMPTE timing ignores.
//! - A chunk whose declared length runs past the end of the file is reported as
//!   [`MidiError::Truncated`] instead of silently reading half a track (midly alone would accept
//!   it unless its `strict` feature is on). Type 2 (sequential) files are read like type 1.

use std::path::{Path, PathBuf};

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use super::{Note, TempoMap};

/// Largest MIDI file read (64 MiB; a long orchestral file is a few hundred KiB). The whole
/// file is read into memory, and everything parsed from it is bounded by its length.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Everything that can go wrong reading or writing a MIDI file. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    /// The file could not be read from disk.
    #[error("{}: cannot read the file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said (the error's source, printed by whoever walks the
        /// chain).
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: the file is {size} bytes; MIDI files over {MAX_FILE_BYTES} bytes are not read", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The file could not be written.
    #[error("{}: cannot write the file", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a Standard MIDI File.
    #[error("{}: not a MIDI file: {reason}", path.display())]
    NotMidi {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The file ends in the middle of a chunk.
    #[error("{}: truncated MIDI file: {reason}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which chunk is cut off, in words.
        reason: String,
    },
    /// The file times its events in SMPTE frames, which this reader does not convert.
    #[error(
        "{}: SMPTE time code division ({fps} fps) is not supported; re-save the file with ticks \
         per quarter note",
        path.display()
    )]
    SmpteUnsupported {
        /// The file.
        path: PathBuf,
        /// Frames per second declared in the header.
        fps: u8,
    },
    /// The file holds no notes at all.
    #[error("{}: the file contains no notes", path.display())]
    NoNotes {
        /// The file.
        path: PathBuf,
    },
    /// Every note is on the drum channel (channel 10), so there is no melodic material.
    #[error("{}: the file contains only drum notes (channel 10)", path.display())]
    OnlyDrums {
        /// The file.
        path: PathBuf,
    },
    /// A track index beyond the song's tracks was asked for.
    #[error("{}: there is no track {index} (the song has {count} tracks)", path.display())]
    NoSuchTrack {
        /// The file.
        path: PathBuf,
        /// The index asked for.
        index: usize,
        /// How many tracks the song has.
        count: usize,
    },
    /// A drum track was asked for as melodic material.
    #[error("{}: track {index} is a drum track (channel 10)", path.display())]
    DrumTrack {
        /// The file.
        path: PathBuf,
        /// The index asked for.
        index: usize,
    },
    /// [`write()`] was given something that cannot be stored in a MIDI file.
    #[error("{}: cannot write: {reason}", path.display())]
    InvalidInput {
        /// The file.
        path: PathBuf,
        /// What is out of range, in words.
        reason: String,
    },
}

/// One part of a song: the notes of one MIDI channel within one file track.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// The file track's name (Track Name meta event), if it has one; for labelling in the CLI.
    pub name: Option<String>,
    /// Index of the track in the file, since one file track may split into several channels.
    pub source_track: usize,
    /// The MIDI channel (0–15) every note of this track is on.
    pub channel: u8,
    /// Whether this is the General MIDI drum channel (channel 10, index 9): drums carry no pitch
    /// content, so they are excluded from melodic material and key detection.
    pub is_drum: bool,
    /// The notes, sorted by start beat, then pitch.
    pub notes: Vec<Note>,
}

/// A MIDI file read into notes in beats.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// The file it was read from, so later errors can name it.
    pub path: PathBuf,
    /// Non-empty tracks, in file order, each file track split by channel.
    pub tracks: Vec<Track>,
    /// Tempo changes from all tracks, to convert beats to seconds.
    pub tempo_map: TempoMap,
    /// Time signature at the start as (numerator, denominator), e.g. (6, 8); (4, 4) if none.
    pub time_signature: (u8, u8),
    /// The file's resolution, in ticks per quarter note; positions are exact multiples of
    /// `1 / ticks_per_beat`.
    pub ticks_per_beat: u16,
}

impl Song {
    /// Parses the bytes of a MIDI file; `path` only names the file in errors.
    ///
    /// # Errors
    ///
    /// [`MidiError::NotMidi`], [`MidiError::Truncated`], [`MidiError::SmpteUnsupported`] or
    /// [`MidiError::NoNotes`], each naming `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, MidiError> {
        let bytes = unwrap_rmid(bytes, path)?;
        check_chunks(bytes, path)?;
        let smf = Smf::parse(bytes).map_err(|error| MidiError::NotMidi {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        let ticks_per_beat = match smf.header.timing {
            Timing::Metrical(ticks) if ticks.as_int() > 0 => ticks.as_int(),
            Timing::Metrical(_) => {
                return Err(MidiError::NotMidi {
                    path: path.to_owned(),
                    reason: "the header declares 0 ticks per quarter note".into(),
                })
            }
            Timing::Timecode(fps, _) => {
                return Err(MidiError::SmpteUnsupported {
                    path: path.to_owned(),
                    fps: fps.as_int(),
                })
            }
        };
        let beats_per_tick = 1.0 / f64::from(ticks_per_beat);

        let mut tracks = Vec::new();
        let mut tempo_changes = Vec::new();
        let mut time_signature = None;
        for (source_track, events) in smf.tracks.iter().enumerate() {
            let mut reader = TrackReader::new();
            for event in events {
                reader.tick += u64::from(event.delta.as_int());
                match event.kind {
                    TrackEventKind::Midi { channel, message } => {
                        reader.midi(channel.as_int(), message);
                    }
                    TrackEventKind::Meta(MetaMessage::TrackName(name)) => {
                        let name = String::from_utf8_lossy(name).trim().to_owned();
                        if reader.name.is_none() && !name.is_empty() {
                            reader.name = Some(name);
                        }
                    }
                    TrackEventKind::Meta(MetaMessage::Tempo(micros)) => {
                        let micros = f64::from(micros.as_int());
                        if micros > 0.0 {
                            let beat = reader.tick as f64 * beats_per_tick;
                            tempo_changes.push((beat, 60e6 / micros));
                        }
                    }
                    TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _))
                        if reader.tick == 0 && time_signature.is_none() && numerator > 0 =>
                    {
                        if let Some(denominator) = 1u8.checked_shl(u32::from(power)) {
                            time_signature = Some((numerator, denominator));
                        }
                    }
                    _ => {}
                }
            }
            tracks.extend(reader.finish(source_track, beats_per_tick));
        }
        if tracks.is_empty() {
            return Err(MidiError::NoNotes {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            tracks,
            tempo_map: TempoMap::from_changes(&tempo_changes),
            time_signature: time_signature.unwrap_or((4, 4)),
            ticks_per_beat,
        })
    }

    /// The melodic notes of one track (`Some(index)`) or of every non-drum track merged
    /// (`None`), sorted by start beat, then pitch.
    ///
    /// # Errors
    ///
    /// [`MidiError::NoSuchTrack`] or [`MidiError::DrumTrack`] for a bad index;
    /// [`MidiError::OnlyDrums`] when `None` finds only drum tracks; [`MidiError::NoNotes`] when
    /// there are no tracks at all.
    pub fn melodic_notes(&self, track: Option<usize>) -> Result<Vec<Note>, MidiError> {
        let path = || self.path.clone();
        let mut notes: Vec<Note> = match track {
            Some(index) => {
                let found = self.tracks.get(index).ok_or(MidiError::NoSuchTrack {
                    path: path(),
                    index,
                    count: self.tracks.len(),
                })?;
                if found.is_drum {
                    return Err(MidiError::DrumTrack {
                        path: path(),
                        index,
                    });
                }
                found.notes.clone()
            }
            None => self
                .tracks
                .iter()
                .filter(|t| !t.is_drum)
                .flat_map(|t| t.notes.iter().copied())
                .collect(),
        };
        if notes.is_empty() {
            let has_drums = self.tracks.iter().any(|t| t.is_drum && !t.notes.is_empty());
            return Err(if has_drums {
                MidiError::OnlyDrums { path: path() }
            } else {
                MidiError::NoNotes { path: path() }
            });
        }
        notes.sort_by(|a, b| {
            a.start_beat
                .total_cmp(&b.start_beat)
                .then(a.pitch.cmp(&b.pitch))
        });
        Ok(notes)
    }

    /// The beat where the last note ends.
    pub fn end_beat(&self) -> f64 {
        self.tracks
            .iter()
            .flat_map(|t| t.notes.iter())
            .map(|n| n.end_beat)
            .fold(0.0, f64::max)
    }
}

/// Reads a Standard MIDI File (type 0 or 1) into notes in beats.
///
/// # Errors
///
/// [`MidiError::Read`] if the file cannot be read, [`MidiError::TooLarge`] above
/// [`MAX_FILE_BYTES`], then as [`Song::from_bytes`].
///
/// # Examples
///
/// ```
/// use continuo::midi::{file, Note};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("phrase.mid");
/// file::write(&path, &[Note::new(60, 100, 0, 0.0, 1.0)], 120.0, 480).unwrap();
/// let song = file::read(&path).unwrap();
/// assert_eq!(song.melodic_notes(None).unwrap()[0].end_beat, 1.0);
/// ```
pub fn read(path: impl AsRef<Path>) -> Result<Song, MidiError> {
    use std::io::Read;
    let path = path.as_ref();
    let read_error = |source| MidiError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(MidiError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take`: a file growing while it is read still stops at the cap.
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Song::from_bytes(&bytes, path)
}

/// Writes `notes` (in beats) as a type 1 MIDI file: a tempo track (constant `tempo_bpm`, 4/4;
/// [`write_with_tempo_map`] keeps tempo changes)
/// followed by one note track. Positions are rounded to the nearest tick; a note shorter than
/// one tick is lengthened to one tick. Each note keeps its channel.
///
/// MIDI cannot tell overlapping notes of one pitch on one channel apart, so the earlier one is
/// cut where the later one starts (the rule [`read`] applies), and of several starting on the
/// same tick only the longest is written.
///
/// # Errors
///
/// [`MidiError::InvalidInput`] for a tempo outside 3.6–60,000,000 BPM, a resolution outside
/// 1–32767 ticks per beat, or a note with pitch or velocity above 127, channel above 15, a
/// negative or non-finite position, or an end before its start; [`MidiError::Write`] if the file
/// cannot be written.
pub fn write(
    path: impl AsRef<Path>,
    notes: &[Note],
    tempo_bpm: f64,
    ticks_per_beat: u16,
) -> Result<(), MidiError> {
    write_bytes(path.as_ref(), || {
        to_bytes(notes, &[(0.0, tempo_bpm)], (4, 4), ticks_per_beat)
    })
}

/// Writes `notes` like [`write()`], with every change of `tempo_map` (each at its beat, rounded to
/// the nearest tick) and `time_signature` (numerator, denominator) at the start, so a file read
/// with [`read`] can be written back with its timing intact.
///
/// # Errors
///
/// As [`write()`]; also [`MidiError::InvalidInput`] for a time signature whose numerator is 0 or
/// whose denominator is not a power of two.
pub fn write_with_tempo_map(
    path: impl AsRef<Path>,
    notes: &[Note],
    tempo_map: &TempoMap,
    time_signature: (u8, u8),
    ticks_per_beat: u16,
) -> Result<(), MidiError> {
    let changes: Vec<(f64, f64)> = tempo_map.changes().collect();
    write_bytes(path.as_ref(), || {
        to_bytes(notes, &changes, time_signature, ticks_per_beat)
    })
}

fn write_bytes(
    path: &Path,
    bytes: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<(), MidiError> {
    let bytes = bytes().map_err(|reason| MidiError::InvalidInput {
        path: path.to_owned(),
        reason,
    })?;
    std::fs::write(path, bytes).map_err(|source| MidiError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The tempo track: the time signature, then each `(beat, bpm)` change at its tick.
fn tempo_track(
    changes: &[(f64, f64)],
    (numerator, denominator): (u8, u8),
    ticks_per_beat: f64,
) -> Result<Vec<TrackEvent<'static>>, String> {
    if numerator == 0 || !denominator.is_power_of_two() {
        return Err(format!(
            "time signature {numerator}/{denominator} is not a MIDI time signature"
        ));
    }
    // 24 MIDI clocks per metronome click (a quarter note) and 8 32nds per quarter: the usual.
    let power = denominator.trailing_zeros() as u8;
    let mut track = vec![meta(0, MetaMessage::TimeSignature(numerator, power, 24, 8))];
    let mut previous = 0;
    for &(beat, bpm) in changes {
        let micros_per_beat = (60e6 / bpm).round();
        let micros_per_beat = u24::try_from(micros_per_beat as u32)
            .filter(|_| bpm.is_finite() && micros_per_beat >= 1.0)
            .ok_or_else(|| format!("tempo {bpm} BPM is outside 3.6–60,000,000 BPM"))?;
        if !(beat.is_finite() && beat >= 0.0) {
            return Err(format!("a tempo change at beat {beat}"));
        }
        let tick = (beat * ticks_per_beat).round() as u64;
        let delta = u28::try_from(u32::try_from(tick.saturating_sub(previous)).unwrap_or(u32::MAX))
            .ok_or_else(|| format!("a tempo change at beat {beat} is too far out"))?;
        previous = previous.max(tick);
        track.push(TrackEvent {
            delta,
            kind: TrackEventKind::Meta(MetaMessage::Tempo(micros_per_beat)),
        });
    }
    track.push(meta(0, MetaMessage::EndOfTrack));
    Ok(track)
}

/// The bytes [`write`] would store, with `(beat, bpm)` tempo changes in beat order; the error is
/// the reason in words.
fn to_bytes(
    notes: &[Note],
    tempo_changes: &[(f64, f64)],
    time_signature: (u8, u8),
    ticks_per_beat: u16,
) -> Result<Vec<u8>, String> {
    let ticks = u15::try_from(ticks_per_beat)
        .filter(|t| t.as_int() > 0)
        .ok_or_else(|| format!("{ticks_per_beat} ticks per beat is outside 1–32767"))?;
    let tempo_track = tempo_track(tempo_changes, time_signature, f64::from(ticks_per_beat))?;

    // (channel, pitch, on tick, off tick, velocity)
    let mut spans: Vec<(u8, u8, u64, u64, u8)> = Vec::with_capacity(notes.len());
    let ticks_per_beat = f64::from(ticks_per_beat);
    for (index, note) in notes.iter().enumerate() {
        let valid_time = note.start_beat.is_finite()
            && note.end_beat.is_finite()
            && note.start_beat >= 0.0
            && note.end_beat >= note.start_beat;
        if !valid_time || note.pitch > 127 || note.velocity > 127 || note.channel > 15 {
            return Err(format!("note {index} is not a valid MIDI note: {note:?}"));
        }
        let on = (note.start_beat * ticks_per_beat).round() as u64;
        let off = ((note.end_beat * ticks_per_beat).round() as u64).max(on + 1);
        spans.push((note.channel, note.pitch, on, off, note.velocity.max(1)));
    }
    // Same-pitch overlaps on one channel: cut the earlier note where the later starts (the
    // reader's retrigger rule), and of notes starting on one tick keep only the longest.
    spans.sort_unstable_by_key(|&(channel, pitch, on, off, _)| {
        (channel, pitch, on, std::cmp::Reverse(off))
    });
    let mut kept: Vec<(u8, u8, u64, u64, u8)> = Vec::with_capacity(spans.len());
    for span in spans {
        if let Some(last) = kept.last_mut().filter(|l| (l.0, l.1) == (span.0, span.1)) {
            if span.2 == last.2 {
                continue;
            }
            last.3 = last.3.min(span.2);
        }
        kept.push(span);
    }

    // (tick, 0 = off / 1 = on, channel, pitch, velocity): offs sort before ons at the same tick,
    // so a repeated pitch is released before it is struck again.
    let mut events: Vec<(u64, u8, u8, u8, u8)> = Vec::with_capacity(kept.len() * 2);
    for (channel, pitch, on, off, velocity) in kept {
        events.push((on, 1, channel, pitch, velocity));
        events.push((off, 0, channel, pitch, 0));
    }
    events.sort_unstable();

    let mut note_track = Vec::with_capacity(events.len() + 1);
    let mut previous = 0;
    for (tick, on, channel, pitch, velocity) in events {
        let delta = u28::try_from(u32::try_from(tick - previous).unwrap_or(u32::MAX))
            .ok_or_else(|| format!("a gap of {} ticks is too long", tick - previous))?;
        previous = tick;
        let (key, vel) = (u7::new(pitch), u7::new(velocity));
        let message = if on == 1 {
            MidiMessage::NoteOn { key, vel }
        } else {
            MidiMessage::NoteOff { key, vel }
        };
        note_track.push(TrackEvent {
            delta,
            kind: TrackEventKind::Midi {
                channel: u4::new(channel),
                message,
            },
        });
    }
    note_track.push(meta(0, MetaMessage::EndOfTrack));

    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(ticks)),
        tracks: vec![tempo_track, note_track],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .map_err(|error| format!("cannot encode: {error}"))?;
    Ok(bytes)
}

fn meta(delta: u32, message: MetaMessage<'static>) -> TrackEvent<'static> {
    TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Meta(message),
    }
}

/// The Standard MIDI File inside `bytes`: the bytes themselves, or the `data` chunk of a RIFF
/// RMID wrapper (unwrapped here so [`check_chunks`] sees the real file).
fn unwrap_rmid<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8], MidiError> {
    if !bytes.starts_with(b"RIFF") {
        return Ok(bytes);
    }
    let not_midi = |reason: &str| MidiError::NotMidi {
        path: path.to_owned(),
        reason: reason.into(),
    };
    let le_u32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let body = bytes
        .get(8..)
        .filter(|body| body.starts_with(b"RMID"))
        .ok_or_else(|| not_midi("a RIFF file that is not RMID (MIDI in RIFF)"))?;
    let mut rest = &body[4..];
    while rest.len() >= 8 {
        let length = le_u32(&rest[4..8]);
        let data = rest.get(8..).unwrap_or_default();
        if rest.starts_with(b"data") {
            return data.get(..length).ok_or_else(|| MidiError::Truncated {
                path: path.to_owned(),
                reason: format!(
                    "the RMID data chunk declares {length} bytes but only {} remain",
                    data.len()
                ),
            });
        }
        // Chunks are padded to an even length.
        let skip = length.saturating_add(length % 2);
        rest = data.get(skip..).unwrap_or_default();
    }
    Err(not_midi("an RMID file without a data chunk"))
}

/// Walks the chunk headers so a cut-off file is reported rather than half-read, and refuses
/// SMPTE timing before midly parses the header (it negates the frame rate byte, which
/// overflows for -128).
fn check_chunks(bytes: &[u8], path: &Path) -> Result<(), MidiError> {
    let not_midi = |reason: String| MidiError::NotMidi {
        path: path.to_owned(),
        reason,
    };
    if bytes.is_empty() {
        return Err(not_midi("the file is empty".into()));
    }
    if !bytes.starts_with(b"MThd") {
        let start = &bytes[..bytes.len().min(4)];
        return Err(not_midi(format!(
            "it does not start with an MThd header (first bytes {start:02x?})"
        )));
    }
    // The division is the header's third field (bytes 12..14); its top bit means SMPTE.
    if let Some(&[high, _]) = bytes.get(12..14) {
        if high & 0x80 != 0 {
            return Err(MidiError::SmpteUnsupported {
                path: path.to_owned(),
                fps: (high as i8).unsigned_abs(),
            });
        }
    }
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        if rest.len() < 8 {
            if rest.iter().all(|&b| b == 0) {
                break; // zero padding after the last chunk
            }
            return Err(MidiError::Truncated {
                path: path.to_owned(),
                reason: format!("a chunk header at byte {position} is cut off"),
            });
        }
        let declared = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if declared > rest.len() - 8 {
            return Err(MidiError::Truncated {
                path: path.to_owned(),
                reason: format!(
                    "the {} chunk at byte {position} declares {declared} bytes but only {} remain",
                    String::from_utf8_lossy(&rest[..4]),
                    rest.len() - 8
                ),
            });
        }
        position += 8 + declared;
    }
    Ok(())
}

/// A finished note as (start tick, end tick, pitch, velocity).
type TickNote = (u64, u64, u8, u8);
/// Start tick and velocity of a sounding note, by channel and pitch.
type Sounding = [[Option<(u64, u8)>; 128]; 16];

/// Pairs note-ons with note-offs within one file track.
struct TrackReader {
    /// Absolute tick of the event being read.
    tick: u64,
    /// First non-empty track name.
    name: Option<String>,
    /// What is sounding now; boxed because it is 4 KiB.
    sounding: Box<Sounding>,
    /// Finished notes by channel.
    finished: [Vec<TickNote>; 16],
}

impl TrackReader {
    fn new() -> Self {
        Self {
            tick: 0,
            name: None,
            sounding: Box::new([[None; 128]; 16]),
            finished: Default::default(),
        }
    }

    fn midi(&mut self, channel: u8, message: MidiMessage) {
        match message {
            MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                self.end(channel, key.as_int());
                self.sounding[usize::from(channel)][usize::from(key.as_int())] =
                    Some((self.tick, vel.as_int()));
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                self.end(channel, key.as_int());
            }
            _ => {}
        }
    }

    /// Ends the sounding note at `pitch`, if any, at the current tick.
    fn end(&mut self, channel: u8, pitch: u8) {
        let channel = usize::from(channel & 0x0f);
        if let Some((start, velocity)) = self.sounding[channel][usize::from(pitch & 0x7f)].take() {
            if self.tick > start {
                self.finished[channel].push((start, self.tick, pitch, velocity));
            }
        }
    }

    /// Ends every sounding note at the track's end and returns one [`Track`] per channel used.
    fn finish(mut self, source_track: usize, beats_per_tick: f64) -> Vec<Track> {
        for channel in 0..16u8 {
            for pitch in 0..128u8 {
                self.end(channel, pitch);
            }
        }
        let name = self.name;
        self.finished
            .into_iter()
            .zip(0u8..)
            .filter(|(notes, _)| !notes.is_empty())
            .map(|(mut raw, channel)| {
                raw.sort_unstable();
                let notes = raw
                    .into_iter()
                    .map(|(start, end, pitch, velocity)| Note {
                        pitch,
                        velocity,
                        channel,
                        start_beat: start as f64 * beats_per_tick,
                        end_beat: end as f64 * beats_per_tick,
                    })
                    .collect();
                Track {
                    name: name.clone(),
                    source_track,
                    channel,
                    is_drum: channel == 9,
                    notes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable-length quantity as stored in MIDI files.
    fn vlq(mut value: u32) -> Vec<u8> {
        let mut bytes = vec![(value & 0x7f) as u8];
        value >>= 7;
        while value > 0 {
            bytes.insert(0, 0x80 | (value & 0x7f) as u8);
            value >>= 7;
        }
        bytes
    }

    /// A whole file from raw track bodies (events with deltas, written by hand).
    fn smf_bytes(format: u16, division: u16, tracks: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = b"MThd".to_vec();
        bytes.extend(6u32.to_be_bytes());
        bytes.extend(format.to_be_bytes());
        bytes.extend((tracks.len() as u16).to_be_bytes());
        bytes.extend(division.to_be_bytes());
        for track in tracks {
            bytes.extend(b"MTrk");
            bytes.extend((track.len() as u32).to_be_bytes());
            bytes.extend(track);
        }
        bytes
    }

    /// Concatenates `(delta, event bytes)` pairs into a track body.
    fn track(events: &[(u32, &[u8])]) -> Vec<u8> {
        events
            .iter()
            .flat_map(|(delta, event)| vlq(*delta).into_iter().chain(event.iter().copied()))
            .collect()
    }

    fn assert_note(note: &Note, pitch: u8, velocity: u8, start: f64, end: f64) {
        assert_eq!((note.pitch, note.velocity), (pitch, velocity), "{note:?}");
        assert!((note.start_beat - start).abs() < 1e-12, "{note:?}");
        assert!((note.end_beat - end).abs() < 1e-12, "{note:?}");
    }

    fn path() -> PathBuf {
        PathBuf::from("dir/song.mid")
    }

    #[test]
    fn vlq_matches_the_spec_examples() {
        assert_eq!(vlq(0), [0x00]);
        assert_eq!(vlq(0x7f), [0x7f]);
        assert_eq!(vlq(0x80), [0x81, 0x00]);
        assert_eq!(vlq(0x3fff), [0xff, 0x7f]);
    }

    /// Type 0, 96 PPQ: running status, note-on velocity 0, a tempo change, 3/4, a drum note
    /// and a note left sounding at the end of the track.
    #[test]
    fn type_0_with_running_status_tempo_change_and_drums() {
        let body = track(&[
            (0, &[0xff, 0x03, 4, b'L', b'e', b'a', b'd']),
            (0, &[0xff, 0x51, 3, 0x07, 0xa1, 0x20]), // 500,000 µs = 120 BPM
            (0, &[0xff, 0x58, 4, 3, 2, 24, 8]),      // 3/4
            (0, &[0x90, 60, 100]),
            (0, &[64, 90]), // running status: note-on 64
            (96, &[60, 0]), // running status: note-on velocity 0 = off
            (0, &[64, 0]),
            (96, &[0xff, 0x51, 3, 0x0f, 0x42, 0x40]), // beat 2: 1,000,000 µs = 60 BPM
            (0, &[0x99, 36, 110]),                    // drum, channel 10
            (48, &[0x89, 36, 64]),                    // note-off
            (48, &[0x90, 67, 80]),                    // beat 3, never ended
            (96, &[0xff, 0x2f, 0]),                   // end of track at beat 4
        ]);
        let song = Song::from_bytes(&smf_bytes(0, 96, &[body]), &path()).unwrap();

        assert_eq!(song.ticks_per_beat, 96);
        assert_eq!(song.time_signature, (3, 4));
        assert_eq!(song.tracks.len(), 2);
        let lead = &song.tracks[0];
        assert_eq!(lead.name.as_deref(), Some("Lead"));
        assert_eq!((lead.channel, lead.is_drum), (0, false));
        assert_eq!(lead.notes.len(), 3);
        assert_note(&lead.notes[0], 60, 100, 0.0, 1.0);
        assert_note(&lead.notes[1], 64, 90, 0.0, 1.0);
        assert_note(&lead.notes[2], 67, 80, 3.0, 4.0);
        let drums = &song.tracks[1];
        assert!(drums.is_drum && drums.channel == 9);
        assert_note(&drums.notes[0], 36, 110, 2.0, 2.5);

        // 2 beats at 120 BPM = 1 s, then 1 s per beat at 60 BPM.
        assert_eq!(song.tempo_map.seconds_at(2.0), 1.0);
        assert_eq!(song.tempo_map.seconds_at(3.0), 2.0);
        assert_eq!(song.tempo_map.seconds_at(4.0), 3.0);
        assert_eq!(song.tempo_map.beat_at(2.5), 3.5);

        let melodic = song.melodic_notes(None).unwrap();
        assert_eq!(melodic.len(), 3);
        assert!(matches!(
            song.melodic_notes(Some(1)),
            Err(MidiError::DrumTrack { index: 1, .. })
        ));
        assert!(matches!(
            song.melodic_notes(Some(5)),
            Err(MidiError::NoSuchTrack {
                index: 5,
                count: 2,
                ..
            })
        ));
        assert_eq!(song.end_beat(), 4.0);
    }

    #[test]
    fn overlapping_same_pitch_notes_are_split_at_the_retrigger() {
        let body = track(&[
            (0, &[0x90, 60, 100]),
            (48, &[0x90, 60, 50]), // retrigger while sounding
            (48, &[0x80, 60, 0]),  // ends the second note
            (48, &[0x80, 60, 0]),  // nothing sounding: ignored
            (0, &[0x90, 62, 70]),
            (0, &[0x90, 62, 71]), // duplicate at the same tick: the zero-length first is dropped
            (96, &[0x80, 62, 0]),
            (0, &[0xff, 0x2f, 0]),
        ]);
        let song = Song::from_bytes(&smf_bytes(0, 96, &[body]), &path()).unwrap();
        let notes = &song.tracks[0].notes;
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert_note(&notes[0], 60, 100, 0.0, 0.5);
        assert_note(&notes[1], 60, 50, 0.5, 1.0);
        assert_note(&notes[2], 62, 71, 1.5, 2.5);
    }

    #[test]
    fn type_1_written_file_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("written.mid");
        let notes = vec![
            Note::new(60, 100, 0, 0.0, 1.0),
            Note::new(64, 80, 0, 0.0, 1.0),
            Note::new(67, 60, 0, 0.0, 1.0),
            Note::new(72, 127, 0, 1.0, 1.0 + 1.0 / 3.0),
            Note::new(72, 1, 0, 1.0 + 1.0 / 3.0, 9.0), // same pitch right after: off before on
            Note::new(48, 90, 2, 0.25, 0.5),
        ];
        write(&file, &notes, 90.0, 480).unwrap();

        let bytes = std::fs::read(&file).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        assert_eq!(smf.header.format, Format::Parallel);
        assert_eq!(smf.tracks.len(), 2);

        let song = read(&file).unwrap();
        assert_eq!(song.path, file);
        assert_eq!(song.ticks_per_beat, 480);
        assert_eq!(song.time_signature, (4, 4));
        // 90 BPM is stored as a whole 666,667 µs per beat.
        assert!((song.tempo_map.bpm_at(0.0) - 90.0).abs() < 1e-4);
        assert!((song.tempo_map.seconds_at(3.0) - 2.0).abs() < 1e-5);
        assert_eq!(song.tracks.len(), 2, "split by channel");
        assert_eq!(song.tracks[1].channel, 2);

        let mut expected = notes.clone();
        expected.sort_by(|a, b| {
            a.start_beat
                .total_cmp(&b.start_beat)
                .then(a.pitch.cmp(&b.pitch))
        });
        let read_back = song.melodic_notes(None).unwrap();
        assert_eq!(read_back.len(), expected.len());
        for (got, want) in read_back.iter().zip(&expected) {
            assert_note(
                got,
                want.pitch,
                want.velocity,
                want.start_beat,
                want.end_beat,
            );
            assert_eq!(got.channel, want.channel);
        }
    }

    #[test]
    fn tempo_changes_and_time_signature_survive_writing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tempo.mid");
        let notes = [Note::new(60, 100, 0, 0.0, 8.0)];
        let map = TempoMap::from_changes(&[(0.0, 100.0), (1.5, 75.0), (4.0, 150.0)]);
        write_with_tempo_map(&file, &notes, &map, (6, 8), 480).unwrap();
        let song = read(&file).unwrap();
        assert_eq!(song.time_signature, (6, 8));
        let changes: Vec<(f64, f64)> = song.tempo_map.changes().collect();
        assert_eq!(changes.len(), 3, "{changes:?}");
        for ((beat, bpm), (want_beat, want_bpm)) in changes.iter().zip(map.changes()) {
            assert_eq!(*beat, want_beat);
            assert!((bpm - want_bpm).abs() < 1e-3, "{bpm} vs {want_bpm}");
        }
        let error = write_with_tempo_map(&file, &notes, &map, (3, 5), 480).unwrap_err();
        assert!(error.to_string().contains("3/5"), "{error}");
    }

    #[test]
    fn write_rejects_what_midi_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.mid");
        let good = [Note::new(60, 100, 0, 0.0, 1.0)];
        let bad_note = [Note::new(128, 100, 0, 0.0, 1.0)];
        let backwards = [Note::new(60, 100, 0, 2.0, 1.0)];
        for (notes, bpm, ppq) in [
            (&good[..], 120.0, 0),
            (&good[..], 0.0, 480),
            (&good[..], f64::NAN, 480),
            (&bad_note[..], 120.0, 480),
            (&backwards[..], 120.0, 480),
        ] {
            let error = write(&file, notes, bpm, ppq).unwrap_err();
            assert!(matches!(error, MidiError::InvalidInput { .. }), "{error}");
            assert!(error.to_string().contains("bad.mid"), "{error}");
        }
        let error = write(dir.path().join("no/such/dir.mid"), &good, 120.0, 480).unwrap_err();
        assert!(matches!(error, MidiError::Write { .. }), "{error}");
    }

    #[test]
    fn write_resolves_same_pitch_overlaps_like_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overlap.mid");
        let notes = [
            Note::new(60, 100, 0, 0.0, 2.0),
            Note::new(60, 90, 0, 1.0, 3.0),
            Note::new(60, 80, 0, 1.0, 1.5), // same start, shorter: not written
            Note::new(60, 70, 1, 0.5, 1.0), // another channel: independent
        ];
        write(&file, &notes, 120.0, 96).unwrap();
        let song = read(&file).unwrap();
        let channel_0 = &song.tracks[0].notes;
        assert_eq!(channel_0.len(), 2);
        assert_note(&channel_0[0], 60, 100, 0.0, 1.0);
        assert_note(&channel_0[1], 60, 90, 1.0, 3.0);
        assert_note(&song.tracks[1].notes[0], 60, 70, 0.5, 1.0);
    }

    fn read_error(name: &str, bytes: &[u8]) -> MidiError {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let error = read(&file).unwrap_err();
        assert!(
            error.to_string().contains(name),
            "{error} should name {name}"
        );
        error
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        // Random bytes from a fixed-seed LCG.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..512)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        assert!(matches!(
            read_error("noise.mid", &noise),
            MidiError::NotMidi { .. }
        ));
        assert!(matches!(
            read_error("empty.mid", &[]),
            MidiError::NotMidi { .. }
        ));

        let body = track(&[
            (0, &[0x90, 60, 100]),
            (96, &[0x80, 60, 0]),
            (0, &[0xff, 0x2f, 0]),
        ]);
        let whole = smf_bytes(1, 96, &[body]);
        assert!(Song::from_bytes(&whole, &path()).is_ok());
        assert!(matches!(
            read_error("cut.mid", &whole[..whole.len() - 3]),
            MidiError::Truncated { .. }
        ));
        assert!(matches!(
            read_error("cut-header.mid", &whole[..10]),
            MidiError::Truncated { .. }
        ));

        let smpte = smf_bytes(1, 0xe728, &[track(&[(0, &[0xff, 0x2f, 0])])]); // -25 fps, 40
        assert!(matches!(
            read_error("smpte.mid", &smpte),
            MidiError::SmpteUnsupported { fps: 25, .. }
        ));

        // -128 fps: midly negates the byte, which overflowed (a panic in debug builds).
        let smpte = smf_bytes(1, 0x8000, &[track(&[(0, &[0xff, 0x2f, 0])])]);
        assert!(matches!(
            read_error("smpte-128.mid", &smpte),
            MidiError::SmpteUnsupported { fps: 128, .. }
        ));

        // MIDI in a RIFF RMID wrapper reads like the bare file, and is checked like it.
        let rmid = |smf: &[u8]| {
            let mut data = b"RMIDdata".to_vec();
            data.extend((smf.len() as u32).to_le_bytes());
            data.extend(smf);
            let mut riff = b"RIFF".to_vec();
            riff.extend((data.len() as u32).to_le_bytes());
            riff.extend(data);
            riff
        };
        let wrapped = Song::from_bytes(&rmid(&whole), &path()).expect("RMID reads");
        assert_eq!(wrapped, Song::from_bytes(&whole, &path()).unwrap());
        assert!(matches!(
            read_error("cut.rmi", &rmid(&whole[..whole.len() - 3])),
            MidiError::Truncated { .. }
        ));
        let mut no_data = rmid(&whole);
        no_data[12..16].copy_from_slice(b"junk");
        assert!(matches!(
            read_error("no-data.rmi", &no_data),
            MidiError::NotMidi { .. }
        ));

        let tempo_only = smf_bytes(1, 96, &[track(&[(0, &[0xff, 0x2f, 0])])]);
        assert!(matches!(
            read_error("silent.mid", &tempo_only),
            MidiError::NoNotes { .. }
        ));

        let missing = read(Path::new("/no/such/file.mid")).unwrap_err();
        assert!(matches!(missing, MidiError::Read { .. }));
        assert!(missing.to_string().contains("/no/such/file.mid"));
    }

    #[test]
    fn only_drums_is_an_error_for_melodic_material() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("drums.mid");
        let kit = [
            Note::new(36, 100, 9, 0.0, 0.25),
            Note::new(38, 100, 9, 1.0, 1.25),
        ];
        write(&file, &kit, 120.0, 96).unwrap();
        let song = read(&file).unwrap();
        assert!(song.tracks.iter().all(|t| t.is_drum));
        let error = song.melodic_notes(None).unwrap_err();
        assert!(matches!(error, MidiError::OnlyDrums { .. }), "{error}");
        assert!(error.to_string().contains("drums.mid"), "{error}");
    }
}
