//! The lifespan protocol: `lifespan.startup` before serving, `lifespan.shutdown` after.

use pagi::{
    App, Error as PagiError, LifespanScope, ReceiveEvent, Receiver, Scope, SendEvent, Sender, Sink,
    Source, State,
};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::task::JoinHandle;

use crate::config::LifespanMode;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Idle,
    Startup,
    Started,
    Shutdown,
    Done,
}

#[derive(Debug, Default)]
struct Chan {
    st: Mutex<ChanState>,
}

#[derive(Debug, Default)]
struct ChanState {
    phase: Phase,
    to_app: Option<ReceiveEvent>,
    recv_waker: Option<Waker>,
    answer: Option<SendEvent>,
    server_waker: Option<Waker>,
}

impl Chan {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChanState> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, ev: ReceiveEvent, phase: Phase) {
        let mut st = self.lock();
        st.phase = phase;
        st.to_app = Some(ev);
        if let Some(w) = st.recv_waker.take() {
            w.wake();
        }
    }

    fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<SendEvent> {
        let mut st = self.lock();
        match st.answer.take() {
            Some(a) => Poll::Ready(a),
            None => {
                st.server_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Source for Chan {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, PagiError>> {
        let mut st = self.lock();
        match st.to_app.take() {
            Some(ev) => Poll::Ready(Ok(ev)),
            None => {
                st.recv_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Sink for Chan {
    fn poll_send(
        &self,
        _cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), PagiError>> {
        let Some(ev) = event.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut st = self.lock();
        let next = match (&ev, st.phase) {
            (
                SendEvent::LifespanStartupComplete | SendEvent::LifespanStartupFailed { .. },
                Phase::Startup,
            ) => Phase::Started,
            (
                SendEvent::LifespanShutdownComplete | SendEvent::LifespanShutdownFailed { .. },
                Phase::Shutdown,
            ) => Phase::Done,
            (
                SendEvent::LifespanStartupComplete
                | SendEvent::LifespanStartupFailed { .. }
                | SendEvent::LifespanShutdownComplete
                | SendEvent::LifespanShutdownFailed { .. },
                _,
            ) => {
                return Poll::Ready(Err(PagiError::out_of_order(format!(
                    "{} does not answer the current lifespan event",
                    ev.kind()
                ))))
            }
            _ => {
                return Poll::Ready(Err(PagiError::unsupported(format!(
                    "{} is not a lifespan event",
                    ev.kind()
                ))))
            }
        };
        st.phase = next;
        st.answer = Some(ev);
        if let Some(w) = st.server_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// A lifespan that completed startup; call [`Lifespan::shutdown`] after serving.
#[derive(Debug)]
pub(crate) struct Lifespan {
    chan: Arc<Chan>,
    task: JoinHandle<Result<(), pagi::BoxError>>,
}

enum Outcome {
    Answer(SendEvent),
    Exited(Result<(), String>),
}

async fn wait(chan: &Chan, task: &mut JoinHandle<Result<(), pagi::BoxError>>) -> Outcome {
    let exited = tokio::select! {
        biased;
        a = poll_fn(|cx| chan.poll_answer(cx)) => return Outcome::Answer(a),
        j = task => j,
    };
    // An app that answers and then returns at once: the answer counts.
    if let Some(a) = chan.lock().answer.take() {
        return Outcome::Answer(a);
    }
    Outcome::Exited(match exited {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("lifespan task failed: {e}")),
    })
}

/// Runs startup. `Ok(None)`: lifespan is off or the app declined it (in `auto`).
pub(crate) async fn startup<A: App>(
    app: &A,
    mode: LifespanMode,
    timeout: Duration,
    worker: Option<u32>,
    state: State,
) -> Result<Option<Lifespan>, Error> {
    if mode == LifespanMode::Off {
        return Ok(None);
    }
    let chan = Arc::new(Chan::default());
    let mut scope = LifespanScope::new(state);
    if let Some(n) = worker {
        scope.pagi = pagi::LifespanPagi::worker(n);
    }
    let fut = app.call(
        Scope::Lifespan(scope),
        Receiver::new(chan.clone()),
        Sender::new(chan.clone()),
    );
    // Startup is queued before the app runs, so even an app that answers first is in order.
    chan.deliver(ReceiveEvent::LifespanStartup, Phase::Startup);
    let mut task = tokio::spawn(fut);
    let outcome = tokio::time::timeout(timeout, wait(&chan, &mut task))
        .await
        .map_err(|_| {
            Error::new(format!(
                "lifespan startup did not complete within {timeout:?}"
            ))
        })?;
    match outcome {
        Outcome::Answer(SendEvent::LifespanStartupComplete) => {
            tracing::info!("lifespan startup complete");
            Ok(Some(Lifespan { chan, task }))
        }
        Outcome::Answer(SendEvent::LifespanStartupFailed { message }) => {
            task.abort();
            Err(Error::new(format!("lifespan startup failed: {message}")))
        }
        Outcome::Answer(_) => unreachable_answer(),
        Outcome::Exited(r) => {
            let why = match r {
                Ok(()) => "the app returned without answering lifespan.startup".to_owned(),
                Err(e) => format!("the app failed on the lifespan scope: {e}"),
            };
            if mode == LifespanMode::On {
                Err(Error::new(format!(
                    "lifespan is required (--lifespan on) but {why}"
                )))
            } else {
                tracing::info!("lifespan not supported ({why}); continuing without it");
                Ok(None)
            }
        }
    }
}

fn unreachable_answer() -> Result<Option<Lifespan>, Error> {
    // The sink only accepts startup answers during startup.
    Err(Error::new("lifespan: unexpected answer"))
}

impl Lifespan {
    /// Sends `lifespan.shutdown` and waits (bounded) for the answer.
    pub(crate) async fn shutdown(mut self, timeout: Duration) {
        if self.task.is_finished() {
            if let Ok(Err(e)) = (&mut self.task).await {
                tracing::error!(error = %e, "lifespan app failed after startup");
            }
            return;
        }
        self.chan
            .deliver(ReceiveEvent::LifespanShutdown, Phase::Shutdown);
        match tokio::time::timeout(timeout, wait(&self.chan, &mut self.task)).await {
            Ok(Outcome::Answer(SendEvent::LifespanShutdownComplete)) => {
                tracing::info!("lifespan shutdown complete")
            }
            Ok(Outcome::Answer(SendEvent::LifespanShutdownFailed { message })) => {
                tracing::error!(%message, "lifespan shutdown failed")
            }
            Ok(Outcome::Answer(_)) => {}
            Ok(Outcome::Exited(Ok(()))) => {
                tracing::warn!("lifespan app returned without answering lifespan.shutdown")
            }
            Ok(Outcome::Exited(Err(e))) => {
                tracing::error!(error = %e, "lifespan app failed during shutdown")
            }
            Err(_) => {
                tracing::warn!(?timeout, "lifespan shutdown timed out");
                self.task.abort();
            }
        }
    }
}
