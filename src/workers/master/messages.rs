//! Reading the worker → master pipe (see the module doc of `workers` for the bytes).

use nix::errno::Errno;
use std::time::Instant;

use super::{State, Worker};
use crate::workers::msg;

/// Everything a worker's pipe holds now; closes it at EOF.
pub(super) fn read_pipe(w: &mut Worker) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(p) = &w.pipe else { return out };
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(p, &mut buf) {
            Ok(0) => {
                w.pipe = None;
                break;
            }
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 64 * 1024 {
                    break;
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    out
}

pub(super) fn parse_messages(w: &mut Worker, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    w.last_beat = Instant::now();
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if !w.partial.is_empty() {
            // Inside a failure message.
            match rest.iter().position(|&c| c == b'\n') {
                Some(end) => {
                    w.partial.extend_from_slice(&rest[..end]);
                    let text = String::from_utf8_lossy(&w.partial[1..]).into_owned();
                    w.failure = Some(text);
                    w.partial.clear();
                    rest = &rest[end + 1..];
                }
                None => {
                    if w.partial.len() < 4096 {
                        w.partial.extend_from_slice(rest);
                    }
                    rest = &[];
                }
            }
            continue;
        }
        match b {
            msg::BEAT => {}
            msg::READY if w.state == State::Starting => w.state = State::Ready,
            msg::RETIRE => w.wants_retire = true,
            msg::FAILED => w.partial.push(b),
            _ => {}
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;
    use std::time::Duration;

    fn worker() -> Worker {
        let now = Instant::now() - Duration::from_secs(60);
        Worker {
            pid: Pid::from_raw(1),
            slot: 1,
            generation: 0,
            pipe: None,
            partial: Vec::new(),
            failure: None,
            started: now,
            last_beat: now,
            state: State::Starting,
            told: None,
            killed: false,
            replaces: None,
            wants_retire: false,
            lifetime_jitter: Duration::ZERO,
            memory_checked: now,
        }
    }

    #[test]
    fn messages() {
        let mut w = worker();
        let before = w.last_beat;
        parse_messages(&mut w, b"..");
        assert!(w.last_beat > before, "any byte is a heartbeat");
        assert_eq!(w.state, State::Starting);
        parse_messages(&mut w, b".r.");
        assert_eq!(w.state, State::Ready);
        assert!(!w.wants_retire);
        parse_messages(&mut w, b"m");
        assert!(w.wants_retire);
        // A failure reason may arrive in pieces, and contain message bytes.
        parse_messages(&mut w, b".fcannot open r");
        assert_eq!(w.failure, None);
        parse_messages(&mut w, b"eady.log\n.");
        assert_eq!(w.failure.as_deref(), Some("cannot open ready.log"));
        assert!(w.partial.is_empty());
    }
}
