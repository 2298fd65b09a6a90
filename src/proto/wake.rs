//! Waker bookkeeping the connection drivers share: each driver keeps its own waker where the
//! app's handles can reach it, and wakes the app's tasks once the connection state is
//! unlocked.

use pagi::DisconnectReason;
use std::task::{Context, Poll, Waker};

/// Stores the driver's waker in `slot` unless the one there already wakes the same task.
#[inline]
pub(crate) fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if slot.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// Wakes (and drains) the app's wakers, except one that would wake the driver itself: then
/// the driver should take another turn at once, and the answer is `true`.
#[inline]
pub(crate) fn wake_others(wakers: &mut Vec<Waker>, cx: &Context<'_>) -> bool {
    let mut own = false;
    for w in wakers.drain(..) {
        if w.will_wake(cx.waker()) {
            own = true;
        } else {
            w.wake();
        }
    }
    own
}

/// `poll_disconnect` of a request's connection info: the reason once the request is
/// disconnected; until then the caller's waker is kept (once) in `wakers`.
#[inline]
pub(crate) fn poll_disconnect(
    disconnected: &Option<DisconnectReason>,
    wakers: &mut Vec<Waker>,
    cx: &Context<'_>,
) -> Poll<DisconnectReason> {
    if let Some(r) = disconnected {
        return Poll::Ready(r.clone());
    }
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
    Poll::Pending
}
