//! A thread that watches a plugin's model choice and loads what is chosen, off both real-time
//! paths (the audio thread and the engine's worker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the loader looks at the choice; a new choice must also hold this long before it
/// is loaded, so sweeping through models does not load every one on the way.
pub const LOADER_POLL: Duration = Duration::from_millis(100);

/// Watches a choice and calls a loader when it settles on a new value. Dropping it stops the
/// thread.
pub struct ChoiceLoader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ChoiceLoader {
    /// Starts thread `name`: every [`LOADER_POLL`] it reads `wanted()`; a value different from
    /// the one loaded (initially `loaded`) that holds for two polls is passed to `load`, which
    /// returns `false` when there is no one left to hand models to (the thread then ends).
    /// `None` if the thread cannot be started (the choice then stays as loaded).
    pub fn spawn<T: PartialEq + Send + 'static>(
        name: &str,
        loaded: T,
        wanted: impl Fn() -> T + Send + 'static,
        mut load: impl FnMut(&T) -> bool + Send + 'static,
    ) -> Option<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let run = move || {
            let mut loaded = loaded;
            let mut pending: Option<T> = None;
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(LOADER_POLL);
                let choice = wanted();
                if choice == loaded {
                    pending = None;
                    continue;
                }
                if pending.as_ref() != Some(&choice) {
                    pending = Some(choice);
                    continue;
                }
                if !load(&choice) {
                    return;
                }
                loaded = choice;
                pending = None;
            }
        };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ChoiceLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
