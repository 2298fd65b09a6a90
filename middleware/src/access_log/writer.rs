//! The background writer: a bounded queue of finished lines, drained by one thread.
//!
//! Request handling never waits for the log. A finished line goes into a
//! [`sync_channel`](std::sync::mpsc::sync_channel) with `try_send`; when the queue is full the
//! line is dropped and counted. The thread writes through a `BufWriter` and flushes whenever the
//! queue is momentarily empty, so a quiet server has nothing sitting in the buffer, and a busy
//! one writes in large chunks.
//!
//! The thread ends when the last [`Writer`] handle is dropped: the channel disconnects, the
//! thread writes what is still queued, flushes and signals. The drop waits for that signal (at
//! most [`DRAIN_TIMEOUT`]), so that the lines of the last requests reach the file before the
//! process exits.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Stderr, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Output;

/// Lines the queue holds before new ones are dropped.
pub(crate) const DEFAULT_CAPACITY: usize = 8192;

/// How long dropping the writer waits for the thread to write out the queue.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The size of the write buffer.
const BUFFER: usize = 64 * 1024;

enum Msg {
    Line(String),
    /// Look at the flags (a reopen was requested).
    Wake,
}

/// What the request side and the thread share.
#[derive(Default)]
struct Flags {
    dropped: AtomicU64,
    reopen: AtomicBool,
}

/// The handle to the writer thread.
pub(crate) struct Writer {
    /// `None` only while dropping.
    tx: Option<SyncSender<Msg>>,
    flags: Arc<Flags>,
    /// Gets `()` (or disconnects) when the thread is done.
    done: Mutex<Receiver<()>>,
}

impl Writer {
    /// Opens `output` and starts the thread. With a `gate`, the thread waits for it (a message
    /// or its sender being dropped) before it reads the queue; tests use that to fill the queue.
    pub(crate) fn spawn(
        output: &Output,
        capacity: usize,
        gate: Option<Receiver<()>>,
    ) -> io::Result<Writer> {
        let dest = Dest::open(output)?;
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let (done_tx, done_rx) = mpsc::channel();
        let flags = Arc::new(Flags::default());
        let thread_flags = flags.clone();
        std::thread::Builder::new()
            .name("pagi-access-log".into())
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                run(&rx, dest, &thread_flags);
                let _ = done_tx.send(());
            })?;
        Ok(Writer {
            tx: Some(tx),
            flags,
            done: Mutex::new(done_rx),
        })
    }

    /// Queues `line` without waiting; drops and counts it when the queue is full.
    pub(crate) fn submit(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.flags.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the thread to reopen the file before it writes the next line.
    pub(crate) fn reopen(&self) {
        self.flags.reopen.store(true, Ordering::SeqCst);
        if let Some(tx) = &self.tx {
            // A full queue means the thread is busy and will see the flag at its next line.
            let _ = tx.try_send(Msg::Wake);
        }
    }

    /// Lines dropped so far because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.flags.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Disconnect, then give the thread a moment to write out what is queued.
        drop(self.tx.take());
        let done = self.done.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = done.recv_timeout(DRAIN_TIMEOUT);
    }
}

/// The thread's loop: block for a message, then take every message already queued, then flush.
fn run(rx: &Receiver<Msg>, mut dest: Dest, flags: &Flags) {
    let mut errors = Errors::default();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            if flags.reopen.swap(false, Ordering::SeqCst) {
                let r = dest.reopen();
                errors.check(&dest, "reopen", r);
            }
            if let Msg::Line(line) = msg {
                let r = dest.write(line.as_bytes());
                errors.check(&dest, "write", r);
            }
            next = rx.try_recv().ok();
        }
        let r = dest.flush();
        errors.check(&dest, "write", r);
    }
}

/// Reports a failing destination on stderr once, not once per line, until it works again.
#[derive(Default)]
struct Errors {
    failing: bool,
}

impl Errors {
    fn check(&mut self, dest: &Dest, what: &str, r: io::Result<()>) {
        match r {
            Ok(()) => self.failing = false,
            Err(_) if self.failing => {}
            Err(e) => {
                self.failing = true;
                if let Dest::File { path, .. } = dest {
                    eprintln!("access log {}: {what} failed: {e}", path.display());
                }
            }
        }
    }
}

/// Where lines go.
enum Dest {
    Stderr(BufWriter<Stderr>),
    File { path: PathBuf, out: BufWriter<File> },
}

impl Dest {
    fn open(output: &Output) -> io::Result<Dest> {
        Ok(match output {
            Output::Stderr => Dest::Stderr(BufWriter::with_capacity(BUFFER, io::stderr())),
            Output::File(path) => Dest::File {
                out: BufWriter::with_capacity(
                    BUFFER,
                    open_append(path).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open access log {}: {e}", path.display()),
                        )
                    })?,
                ),
                path: path.clone(),
            },
        })
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Dest::Stderr(out) => out.write_all(line),
            Dest::File { out, .. } => out.write_all(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Dest::Stderr(out) => out.flush(),
            Dest::File { out, .. } => out.flush(),
        }
    }

    /// Flushes the old file and opens the path again (logrotate has moved the old one away).
    /// If the path cannot be opened, lines keep going to the old file. Stderr: nothing to do.
    fn reopen(&mut self) -> io::Result<()> {
        let Dest::File { path, out } = self else {
            return Ok(());
        };
        let flushed = out.flush();
        let file = open_append(path)?;
        *out = BufWriter::with_capacity(BUFFER, file);
        flushed
    }
}

/// Opens `path` for appending, creating it.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}
