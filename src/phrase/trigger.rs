//! When Continuo Phrase starts a continuation: on the Generate button, when the player pauses,
//! or every N bars (call and response). Runs on the audio thread; plain arithmetic only.

/// The trigger-mode parameter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Only the Generate button.
    Button,
    /// When nothing has been played for a number of beats after some playing.
    Auto,
    /// At every Nth bar line, if something was played since the last continuation.
    EveryBars,
}

/// Per-block trigger inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriggerInput {
    /// Mode chosen by the user.
    pub mode: TriggerMode,
    /// The Generate button's current value.
    pub button: bool,
    /// Beat at the block start and at its end.
    pub block_beats: (f64, f64),
    /// Quarter notes per bar.
    pub beats_per_bar: f64,
    /// Silence (in beats) that triggers `Auto`.
    pub auto_beats: f64,
    /// Bar interval for `EveryBars`.
    pub every_bars: u32,
}

/// Remembers what the triggers depend on between blocks.
#[derive(Debug, Default, Clone)]
pub struct TriggerState {
    button_was_down: bool,
    /// Input notes held down now.
    held: u32,
    /// Beat of the last input note-on or note-off.
    last_input_beat: Option<f64>,
    /// Whether anything was played since the last continuation was triggered.
    played_since_trigger: bool,
}

impl TriggerState {
    /// Records an input note-on (`on`) or note-off at `beat`.
    pub fn note(&mut self, on: bool, beat: f64) {
        if on {
            self.held += 1;
            self.played_since_trigger = true;
        } else {
            self.held = self.held.saturating_sub(1);
        }
        self.last_input_beat = Some(beat);
    }

    /// Whether a continuation should start in this block; the beat it was triggered at.
    pub fn update(&mut self, input: &TriggerInput) -> Option<f64> {
        let (start, end) = input.block_beats;
        let pressed = input.button && !self.button_was_down;
        self.button_was_down = input.button;
        let fired = match input.mode {
            _ if pressed => Some(start),
            TriggerMode::Button => None,
            TriggerMode::Auto => self
                .last_input_beat
                .map(|last| last + input.auto_beats)
                .filter(|due| self.played_since_trigger && self.held == 0 && *due < end)
                .map(|due| due.max(start)),
            TriggerMode::EveryBars => {
                let every = f64::from(input.every_bars.max(1)) * input.beats_per_bar;
                let next_line = (start / every).ceil() * every;
                (self.played_since_trigger && next_line < end && next_line > 0.0)
                    .then_some(next_line)
            }
        };
        if fired.is_some() {
            self.played_since_trigger = false;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: TriggerMode, button: bool, start: f64) -> TriggerInput {
        TriggerInput {
            mode,
            button,
            block_beats: (start, start + 0.25),
            beats_per_bar: 4.0,
            auto_beats: 2.0,
            every_bars: 2,
        }
    }

    #[test]
    fn button_fires_once_per_press() {
        let mut state = TriggerState::default();
        assert_eq!(
            state.update(&input(TriggerMode::Button, true, 1.0)),
            Some(1.0)
        );
        assert_eq!(
            state.update(&input(TriggerMode::Button, true, 1.25)),
            None,
            "held down: no repeat"
        );
        assert_eq!(state.update(&input(TriggerMode::Button, false, 1.5)), None);
        assert_eq!(
            state.update(&input(TriggerMode::Button, true, 1.75)),
            Some(1.75)
        );
    }

    #[test]
    fn auto_fires_after_a_pause_in_playing() {
        let mut state = TriggerState::default();
        assert_eq!(
            state.update(&input(TriggerMode::Auto, false, 0.0)),
            None,
            "nothing played yet"
        );
        state.note(true, 0.0);
        state.note(false, 1.0);
        assert_eq!(
            state.update(&input(TriggerMode::Auto, false, 2.0)),
            None,
            "only one beat of silence"
        );
        assert_eq!(
            state.update(&input(TriggerMode::Auto, false, 2.875)),
            Some(3.0)
        );
        assert_eq!(
            state.update(&input(TriggerMode::Auto, false, 4.0)),
            None,
            "once per pause"
        );
        state.note(true, 5.0);
        assert_eq!(
            state.update(&input(TriggerMode::Auto, false, 8.0)),
            None,
            "a note is still held"
        );
    }

    #[test]
    fn every_bars_fires_on_the_bar_grid_after_playing() {
        let mut state = TriggerState::default();
        assert_eq!(
            state.update(&input(TriggerMode::EveryBars, false, 7.9)),
            None,
            "nothing played"
        );
        state.note(true, 8.5);
        state.note(false, 9.0);
        assert_eq!(
            state.update(&input(TriggerMode::EveryBars, false, 12.0)),
            None,
            "bar 3 is not every 2nd bar"
        );
        assert_eq!(
            state.update(&input(TriggerMode::EveryBars, false, 15.9)),
            Some(16.0)
        );
        assert_eq!(
            state.update(&input(TriggerMode::EveryBars, false, 23.9)),
            None,
            "nothing new played"
        );
    }
}
