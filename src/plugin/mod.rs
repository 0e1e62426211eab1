//! nice-plug glue: parameters, activation and `process()` for the three plugins. All real work
//! is in `engine`, `style` and `phrase`, which know nothing about the plugin framework.

pub mod bypass;
pub mod loader;
pub mod model_choice;
pub mod phrase;
pub mod style;
pub mod voice;

use nice_plug::prelude::{Enum, ProcessMode};

use crate::engine::audio::Timing;

/// Offline Render (Style and Voice): whether the audio thread may wait for the worker.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineRender {
    /// Only when the host says it renders offline; live, a late worker is heard as a gap.
    #[id = "auto"]
    #[name = "Auto"]
    Auto,
    /// Always: for hosts that render faster than real time without saying so (DawDreamer
    /// tells every plugin it runs live). A live session would stall on a late worker.
    #[id = "always"]
    #[name = "Always"]
    Always,
}

impl OfflineRender {
    /// How `process()` treats the worker, given what the host said at activation.
    pub fn timing(self, host: Timing) -> Timing {
        match self {
            Self::Auto => host,
            Self::Always => Timing::Offline,
        }
    }
}

/// What the host's processing mode allows: waiting only in an offline render.
pub fn host_timing(mode: ProcessMode) -> Timing {
    match mode {
        ProcessMode::Offline => Timing::Offline,
        ProcessMode::Realtime | ProcessMode::Buffered => Timing::Realtime,
    }
}

/// Vendor string the three plugins report.
pub const VENDOR: &str = "Continuo";
/// Project URL the three plugins report.
pub const URL: &str = "https://example.invalid/continuo";
/// Support e-mail the three plugins report.
pub const EMAIL: &str = "continuo@example.invalid";

#[cfg(test)]
pub(crate) mod test_support {
    use nice_plug::params::internals::ParamPtr;

    /// What a host does with a parameter's text (clap-validator's `param-conversions`, a
    /// DAW's value entry): value → text → value → text must agree, for every value shown.
    pub fn assert_text_round_trips(name: &str, param: ParamPtr) {
        // SAFETY: the pointers come from parameters that outlive this function.
        let (steps, to_text, to_value) = unsafe {
            (
                param.step_count(),
                |n: f32| param.normalized_value_to_string(n, true),
                |text: &str| param.string_to_normalized_value(text),
            )
        };
        // Every step of a discrete parameter, a dense sweep of a continuous one.
        let points = steps.unwrap_or(4000);
        for i in 0..=points {
            let text = to_text(i as f32 / points as f32);
            let value = to_value(&text)
                .unwrap_or_else(|| panic!("{name}: the text `{text}` does not parse back"));
            let again = to_text(value);
            assert_eq!(again, text, "{name}: `{text}` → {value} → `{again}`");
            assert_eq!(to_value(&again), Some(value), "{name}: `{again}`");
        }
    }
}
