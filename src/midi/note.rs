//! The note type shared by files, the tokenizer and key detection.

use serde::{Deserialize, Serialize};

/// One note, positioned in beats (quarter notes) from the start of its song or phrase.
///
/// The plugin's `RecordedNote` (velocity 0–1) converts to this with [`Note::velocity_from_unit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// MIDI note number, 0–127.
    pub pitch: u8,
    /// MIDI note-on velocity, 1–127 (0 would be a note-off in a file).
    pub velocity: u8,
    /// MIDI channel, 0–15 (9 is the General MIDI drum channel).
    pub channel: u8,
    /// Beat of the note-on.
    pub start_beat: f64,
    /// Beat of the note-off; greater than `start_beat` for every note this module produces.
    pub end_beat: f64,
}

impl Note {
    /// A note from its fields, in the order of a MIDI note-on.
    ///
    /// # Examples
    ///
    /// ```
    /// use continuo::midi::Note;
    ///
    /// let note = Note::new(60, 100, 0, 0.0, 0.5);
    /// assert_eq!(note.duration_beats(), 0.5);
    /// ```
    pub const fn new(pitch: u8, velocity: u8, channel: u8, start_beat: f64, end_beat: f64) -> Self {
        Self {
            pitch,
            velocity,
            channel,
            start_beat,
            end_beat,
        }
    }

    /// Length of the note in beats.
    pub fn duration_beats(&self) -> f64 {
        self.end_beat - self.start_beat
    }

    /// Whether the note is on the General MIDI drum channel (channel 10, index 9).
    pub const fn is_drum(&self) -> bool {
        self.channel == 9
    }

    /// MIDI velocity (1–127) from a 0–1 velocity, as hosts report it. Out-of-range and NaN
    /// values are clamped; 0 maps to 1 because velocity 0 means note-off in MIDI.
    ///
    /// # Examples
    ///
    /// ```
    /// use continuo::midi::Note;
    ///
    /// assert_eq!(Note::velocity_from_unit(1.0), 127);
    /// assert_eq!(Note::velocity_from_unit(0.0), 1);
    /// assert_eq!(Note::velocity_from_unit(f32::NAN), 1);
    /// ```
    pub fn velocity_from_unit(velocity: f32) -> u8 {
        let scaled = (velocity * 127.0).round();
        if scaled.is_nan() {
            1
        } else {
            scaled.clamp(1.0, 127.0) as u8
        }
    }

    /// The velocity as 0–1, the inverse of [`Note::velocity_from_unit`].
    pub fn velocity_unit(&self) -> f32 {
        f32::from(self.velocity.min(127)) / 127.0
    }
}
