//! Worker threads: one per plugin instance, owned by a [`WorkerHandle`].
//!
//! The audio thread never wakes a worker (waking is a syscall); a worker with nothing to do parks
//! with a short timeout ([`IDLE_POLL`]) and looks again. That poll interval is part of the
//! latency budget (see `audio::Latency`). Non-realtime callers (CLI, offline bounces, the GUI)
//! may call [`WorkerHandle::wake`] to skip the wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

/// How long an idle worker sleeps before it looks for new input again.
pub const IDLE_POLL: Duration = Duration::from_millis(1);

/// The work a worker thread does; the thread calls it until the handle is dropped.
pub trait Worker: Send + 'static {
    /// Control messages from non-realtime threads (crossbeam channel).
    type Command: Send + 'static;

    /// Handles one control message.
    fn handle(&mut self, command: Self::Command);

    /// Does whatever work is ready; returns `false` when there was none (the thread then parks).
    fn poll(&mut self) -> bool;
}

/// Owns a running worker thread. Dropping it stops the thread and joins it.
pub struct WorkerHandle<C> {
    control: Option<Sender<C>>,
    thread: Option<JoinHandle<()>>,
    unparker: Thread,
}

impl<C: Send + 'static> WorkerHandle<C> {
    /// Starts `worker` on a new thread named `name`.
    ///
    /// # Errors
    /// When the OS cannot create the thread.
    pub fn spawn<W: Worker<Command = C>>(name: &str, worker: W) -> std::io::Result<Self> {
        let (control, commands) = crossbeam_channel::unbounded();
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(worker, commands))?;
        Ok(Self {
            control: Some(control),
            unparker: thread.thread().clone(),
            thread: Some(thread),
        })
    }

    /// Sends a control message; returns `false` if the worker has already stopped.
    pub fn send(&self, command: C) -> bool {
        let sent = self
            .control
            .as_ref()
            .is_some_and(|control| control.send(command).is_ok());
        self.wake();
        sent
    }

    /// A sender for another non-realtime thread (e.g. a model loader). The worker stops only
    /// when every sender is gone, so drop such threads before the handle.
    pub fn sender(&self) -> Option<Sender<C>> {
        self.control.clone()
    }

    /// Wakes the worker if it is parked. Not for the audio thread (it is a syscall).
    pub fn wake(&self) {
        self.unparker.unpark();
    }

    /// A handle that can wake the worker, for offline drivers.
    pub fn unparker(&self) -> Thread {
        self.unparker.clone()
    }
}

impl<C> Drop for WorkerHandle<C> {
    fn drop(&mut self) {
        // Disconnecting the channel is the stop signal.
        self.control = None;
        self.unparker.unpark();
        if let Some(thread) = self.thread.take() {
            // A worker that panicked has already stopped; nothing more to clean up.
            let _ = thread.join();
        }
    }
}

/// How an offline render waits for its worker: until a progress counter reaches a target, at
/// most `limit` at a time. After a timeout it does not wait again until the worker has moved
/// on: a dead or stuck worker must cost a bounce `limit` once, not on every block. Offline
/// only: it yields and sleeps.
pub struct OfflineWait {
    worker: Thread,
    limit: Duration,
    /// The progress when a wait last timed out.
    stalled_at: Option<u64>,
}

impl OfflineWait {
    /// Waits for `worker` at most `limit` at a time.
    pub fn new(worker: Thread, limit: Duration) -> Self {
        Self {
            worker,
            limit,
            stalled_at: None,
        }
    }

    /// Changes how long one wait may take.
    pub fn set_limit(&mut self, limit: Duration) {
        self.limit = limit;
    }

    /// Wakes the worker and waits until `progress` reaches `target`. Returns `false` when this
    /// wait timed out (the caller counts the stall); a worker still stuck since the last
    /// timeout is not waited for.
    pub fn until(&mut self, progress: &AtomicU64, target: u64) -> bool {
        let now = progress.load(Ordering::Acquire);
        if now >= target || self.stalled_at == Some(now) {
            return true;
        }
        self.stalled_at = None;
        let deadline = Instant::now() + self.limit;
        let mut polls = 0u32;
        while progress.load(Ordering::Acquire) < target {
            if Instant::now() >= deadline {
                self.stalled_at = Some(progress.load(Ordering::Acquire));
                return false;
            }
            self.worker.unpark();
            // Yield first (the worker usually needs microseconds), then back off.
            if polls < 1000 {
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(50));
            }
            polls += 1;
        }
        true
    }
}

fn run<W: Worker>(mut worker: W, commands: Receiver<W::Command>) {
    loop {
        loop {
            match commands.try_recv() {
                Ok(command) => worker.handle(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if !worker.poll() {
            thread::park_timeout(IDLE_POLL);
        }
    }
}
