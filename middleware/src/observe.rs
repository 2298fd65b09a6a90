//! Watching the events between an app and its server, for middleware that log, count or check
//! them (access log, lint) without changing them.
//!
//! [`watch_send`] wraps a [`Sender`] so that a [`SendWatch`] learns of every event the server
//! accepted (exactly once, and only if accepted); [`watch_receive`] wraps a [`Receiver`] so that
//! a [`ReceiveWatch`] sees every event the app received.

use pagi::{Error, ReceiveEvent, Receiver, SendEvent, Sender, Sink, Source};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Learns of the events an app sends.
pub trait SendWatch: Send + Sync + 'static {
    /// What to remember of an event while the server decides whether to accept it (keep it
    /// small: a status, a length).
    type Note: Send;

    /// Looks at an event about to be offered to the server.
    fn note(&self, event: &SendEvent) -> Self::Note;

    /// The server accepted the event noted as `note`.
    fn accepted(&self, note: Self::Note);

    /// The server refused the event (`send` fails with `error`).
    fn refused(&self, note: Self::Note, error: &Error) {
        let _ = (note, error);
    }
}

/// Learns of the events an app receives.
pub trait ReceiveWatch: Send + Sync + 'static {
    /// The app received `event`.
    fn received(&self, event: &ReceiveEvent);
}

/// `send` with `watch` looking on.
pub fn watch_send<W: SendWatch>(send: Sender, watch: Arc<W>) -> Sender {
    Sender::new(Arc::new(WatchedSink { inner: send, watch }))
}

/// `receive` with `watch` looking on.
pub fn watch_receive<W: ReceiveWatch>(receive: Receiver, watch: Arc<W>) -> Receiver {
    Receiver::new(Arc::new(WatchedSource {
        inner: receive,
        watch,
    }))
}

struct WatchedSink<W> {
    inner: Sender,
    watch: Arc<W>,
}

impl<W: SendWatch> Sink for WatchedSink<W> {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        let note = event.as_ref().map(|e| self.watch.note(e));
        let r = self.inner.poll_send(cx, event);
        if let Some(note) = note {
            match (&r, event.is_none()) {
                (Poll::Ready(Err(e)), _) => self.watch.refused(note, e),
                // Taken: accepted (a `Pending` now only waits for the transport to drain).
                (_, true) => self.watch.accepted(note),
                // Not taken yet: it will be offered (and noted) again.
                (_, false) => {}
            }
        }
        r
    }
}

struct WatchedSource<W> {
    inner: Receiver,
    watch: Arc<W>,
}

impl<W: ReceiveWatch> Source for WatchedSource<W> {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let r = self.inner.poll_receive(cx);
        if let Poll::Ready(Ok(ev)) = &r {
            self.watch.received(ev);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagi::Headers;
    use std::sync::Mutex;

    /// A sink that accepts starts and refuses everything else; takes events only every other
    /// poll, to check that watchers see each event once.
    struct Picky(Mutex<u32>);

    impl Sink for Picky {
        fn poll_send(
            &self,
            cx: &mut Context<'_>,
            event: &mut Option<SendEvent>,
        ) -> Poll<Result<(), Error>> {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            if *n % 2 == 1 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match event.take() {
                Some(SendEvent::HttpResponseStart { .. }) | None => Poll::Ready(Ok(())),
                Some(_) => Poll::Ready(Err(Error::invalid("no"))),
            }
        }
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl SendWatch for Log {
        type Note = &'static str;
        fn note(&self, e: &SendEvent) -> &'static str {
            e.kind()
        }
        fn accepted(&self, note: &'static str) {
            self.0.lock().unwrap().push(format!("ok {note}"));
        }
        fn refused(&self, note: &'static str, _: &Error) {
            self.0.lock().unwrap().push(format!("refused {note}"));
        }
    }

    #[test]
    fn each_event_is_reported_once_with_its_outcome() {
        let log = Arc::new(Log::default());
        let send = watch_send(Sender::new(Arc::new(Picky(Mutex::new(0)))), log.clone());
        futures::executor::block_on(async {
            send.send(SendEvent::start(200, Headers::new()))
                .await
                .unwrap();
            assert!(send.send(SendEvent::body("x", false)).await.is_err());
        });
        assert_eq!(
            *log.0.lock().unwrap(),
            ["ok http.response.start", "refused http.response.body"]
        );
    }
}
