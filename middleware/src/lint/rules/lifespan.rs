//! The `lifespan` scope: each received event (`lifespan.startup`, `lifespan.shutdown`) gets
//! exactly one answer (`.complete` or `.failed`), and only after it was received.

use pagi::ReceiveEvent;

use super::fields::Sent;
use super::Report;

/// Where one of the two lifespan events stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// The server has not delivered the event.
    #[default]
    Pending,
    /// Delivered at this index, not answered.
    Received(usize),
    /// Answered by `kind` at this index.
    Answered(&'static str, usize),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Lifespan {
    startup: Phase,
    shutdown: Phase,
}

impl Lifespan {
    pub fn receive(&mut self, event: &ReceiveEvent, index: usize) {
        match event {
            ReceiveEvent::LifespanStartup => self.startup = Phase::Received(index),
            ReceiveEvent::LifespanShutdown => self.shutdown = Phase::Received(index),
            _ => {}
        }
    }

    pub fn send(&mut self, sent: &Sent, r: &mut Report<'_>) {
        let kind = sent.kind;
        let (phase, event) = if kind.starts_with("lifespan.startup.") {
            (&mut self.startup, "lifespan.startup")
        } else if kind.starts_with("lifespan.shutdown.") {
            (&mut self.shutdown, "lifespan.shutdown")
        } else {
            return;
        };
        match *phase {
            Phase::Pending => r.add(
                "answer-without-event",
                format!(
                    "{kind}, but the app has not received {event}; an answer comes after the event it answers"
                ),
            ),
            Phase::Answered(first, at) => r.add(
                "duplicate-answer",
                format!(
                    "{kind}, but {event} was already answered by {first} at event #{at}; each event gets exactly one answer"
                ),
            ),
            Phase::Received(_) => *phase = Phase::Answered(kind, r.index()),
        }
    }

    pub fn returned(&self, r: &mut Report<'_>) {
        if let Phase::Received(at) = self.shutdown {
            r.add(
                "missing-answer",
                format!(
                    "lifespan.shutdown (event #{at}) was never answered; the app answers it with lifespan.shutdown.complete or .failed before returning (the server logs a warning)"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use pagi::{ReceiveEvent, SendEvent};

    fn startup() -> Ev {
        Ev::R(ReceiveEvent::LifespanStartup)
    }

    fn shutdown() -> Ev {
        Ev::R(ReceiveEvent::LifespanShutdown)
    }

    fn complete() -> Ev {
        Ev::S(SendEvent::LifespanStartupComplete)
    }

    fn failed() -> Ev {
        Ev::S(SendEvent::LifespanStartupFailed {
            message: "db down".into(),
        })
    }

    fn shutdown_complete() -> Ev {
        Ev::S(SendEvent::LifespanShutdownComplete)
    }

    #[test]
    fn correct_exchanges() {
        clean(&run(
            &lifespan(),
            vec![startup(), complete(), shutdown(), shutdown_complete()],
            Some(true),
        ));
        clean(&run(&lifespan(), vec![startup(), failed()], Some(true)));
        // Declining: returning without answering startup, having received it or not.
        clean(&run(&lifespan(), vec![], Some(true)));
        clean(&run(&lifespan(), vec![startup()], Some(true)));
        // Returning after startup; the server will not send shutdown.
        clean(&run(&lifespan(), vec![startup(), complete()], Some(true)));
    }

    #[test]
    fn answer_without_event() {
        only(
            &run(&lifespan(), vec![complete()], None),
            "answer-without-event",
            &[
                "event #0 (sent lifespan.startup.complete)",
                "has not received lifespan.startup",
                "out of order",
            ],
        );
        only(
            &run(
                &lifespan(),
                vec![startup(), complete(), shutdown_complete()],
                None,
            ),
            "answer-without-event",
            &["has not received lifespan.shutdown"],
        );
    }

    #[test]
    fn duplicate_answer() {
        only(
            &run(&lifespan(), vec![startup(), complete(), complete()], None),
            "duplicate-answer",
            &[
                "event #2",
                "already answered by lifespan.startup.complete at event #1",
            ],
        );
        only(
            &run(&lifespan(), vec![startup(), failed(), complete()], None),
            "duplicate-answer",
            &["lifespan.startup.failed at event #1"],
        );
        only(
            &run(
                &lifespan(),
                vec![
                    startup(),
                    complete(),
                    shutdown(),
                    shutdown_complete(),
                    Ev::S(SendEvent::LifespanShutdownFailed {
                        message: String::new(),
                    }),
                ],
                None,
            ),
            "duplicate-answer",
            &["lifespan.shutdown was already answered"],
        );
    }

    #[test]
    fn unanswered_shutdown() {
        only(
            &run(
                &lifespan(),
                vec![startup(), complete(), shutdown()],
                Some(true),
            ),
            "missing-answer",
            &["lifespan.shutdown (event #2) was never answered"],
        );
    }
}
