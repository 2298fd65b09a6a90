//! The life of a plain HTTP response: start, body pieces, trailers. The `http` scope is this
//! machine (plus `http.fullflush`); an `sse` scope uses it for a declining response.

use super::fields::{Facts, Fields, FileRef, Piece, Sent};
use super::{Info, Report};

/// The names of the events, which differ by scope type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Names {
    pub start: &'static str,
    pub body: &'static str,
}

/// Whether the app's `content-length` frames the body, and how much has been sent against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    /// No length to check: none given, or it does not frame this response (HEAD, 204, 304,
    /// trailers on HTTP/1.1), or a file made the size unknown here.
    Unchecked,
    /// The body must be exactly `declared` bytes; `sent` so far.
    Declared { declared: u64, sent: u64 },
}

/// How a complete response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// A piece with `more: 0`.
    Final,
    /// A file, which is always the last piece.
    File,
    /// A piece that overflowed the `content-length`: the spec counts the response as complete.
    Overflow,
    /// The trailers.
    Trailers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No start yet.
    Init,
    /// Started; `last` is the last body piece sent (with `more: 1`), if any.
    Body { length: Length, last: Option<usize> },
    /// The body ended (at event `at`); the announced trailers are due.
    Trailers { at: usize },
    /// Nothing more may follow: the response ended at event `at`.
    Complete { at: usize, how: Ended },
}

/// A response in progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Response {
    state: State,
    /// The event index of the accepted start.
    start_at: usize,
    /// Whether the start said `trailers: 1`.
    announced: bool,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            state: State::Init,
            start_at: 0,
            announced: false,
        }
    }
}

impl Response {
    /// Whether a start was accepted.
    pub fn started(&self) -> bool {
        self.state != State::Init
    }

    /// The index of the accepted start (meaningful once [`started`](Self::started)).
    pub fn start_index(&self) -> usize {
        self.start_at
    }

    /// Whether nothing more may be sent.
    pub fn complete(&self) -> bool {
        matches!(self.state, State::Complete { .. })
    }

    /// The state, in words, for messages.
    fn describe(&self, n: Names) -> String {
        let s = self.start_at;
        match self.state {
            State::Init => format!("no {} has been accepted yet", n.start),
            State::Body { last: None, .. } => {
                format!("the response started at event #{s} and no body piece has followed")
            }
            State::Body { last: Some(l), .. } => format!(
                "the response started at event #{s} and the body is streaming (event #{l} had more: 1)"
            ),
            State::Trailers { at } => format!(
                "the body ended at event #{at} and the trailers announced at event #{s} are due"
            ),
            State::Complete { at, how } => match how {
                Ended::Final => format!("the response is complete: the final body piece (more: 0) was event #{at}"),
                Ended::File => format!("the response is complete: event #{at} sent a file, which is always the last piece"),
                Ended::Overflow => format!("the response is complete: event #{at} overflowed the content-length, which ends it"),
                Ended::Trailers => format!("the response is complete: its trailers were event #{at}"),
            },
        }
    }

    /// A start (`status`, `trailers`, `fields`).
    pub fn start(&mut self, n: Names, sent: &Sent, info: &Info, r: &mut Report<'_>) {
        let Facts::Start {
            status,
            trailers,
            fields,
        } = &sent.facts
        else {
            return;
        };
        let (status, trailers) = (*status, *trailers);
        if self.started() {
            r.add(
                "duplicate-start",
                format!(
                    "a second {} (status {status}), but {}; a response has exactly one start",
                    n.start,
                    self.describe(n)
                ),
            );
        }
        check_status(n.start, status, r);
        r.fields(fields);
        if r.rejected() {
            return;
        }
        let framed = !(info.head || status == 204 || status == 304 || (trailers && !info.http10));
        let length = match (framed, fields.content_length) {
            (true, Some(declared)) => Length::Declared { declared, sent: 0 },
            _ => Length::Unchecked,
        };
        self.state = State::Body { length, last: None };
        self.start_at = r.index();
        self.announced = trailers;
    }

    /// A body piece.
    pub fn body(&mut self, n: Names, piece: &Piece, r: &mut Report<'_>) {
        if piece.file.is_some() && piece.len > 0 {
            r.add(
                "body-and-file",
                format!(
                    "{} carries both {} body bytes and a file; an event carries exactly one of body and file",
                    n.body, piece.len
                ),
            );
        }
        if let Some(FileRef::Relative(p)) = &piece.file {
            r.add(
                "file-not-absolute",
                format!(
                    "{} names the file {p:?}, which is not an absolute path",
                    n.body
                ),
            );
        }
        let (length, trailers) = match self.state {
            State::Init => {
                r.add(
                    "body-before-start",
                    format!(
                        "{} before {}: {}; a response begins with its start",
                        n.body,
                        n.start,
                        self.describe(n)
                    ),
                );
                return;
            }
            State::Trailers { .. } | State::Complete { .. } => {
                r.add(
                    "body-after-complete",
                    format!(
                        "{} after the body ended: {}; no body piece may follow the final one",
                        n.body,
                        self.describe(n)
                    ),
                );
                return;
            }
            State::Body { length, .. } => (length, self.announced),
        };
        if r.rejected() {
            return;
        }
        let at = r.index();
        let is_final = piece.is_final();
        let length = match length {
            Length::Declared { .. } if piece.file.is_some() => Length::Unchecked,
            Length::Declared { declared, sent } => {
                let total = sent + piece.len;
                if total > declared {
                    r.add(
                        "content-length-mismatch",
                        format!(
                            "{} carries {} bytes after {sent}, so the body reaches {total} bytes, more than its content-length of {declared}; only {} of them are sent, the response counts as complete and the connection is closed after it",
                            n.body,
                            piece.len,
                            declared - sent
                        ),
                    );
                    self.state = State::Complete {
                        at,
                        how: Ended::Overflow,
                    };
                    return;
                }
                if is_final && total < declared {
                    r.add(
                        "content-length-mismatch",
                        format!(
                            "{} ends the body at {total} bytes, short of its content-length of {declared}; the bytes are sent and the connection is closed after the response, so the client sees a short body",
                            n.body
                        ),
                    );
                }
                Length::Declared {
                    declared,
                    sent: total,
                }
            }
            Length::Unchecked => Length::Unchecked,
        };
        self.state = if !is_final {
            State::Body {
                length,
                last: Some(at),
            }
        } else if trailers {
            State::Trailers { at }
        } else {
            State::Complete {
                at,
                how: if piece.file.is_some() {
                    Ended::File
                } else {
                    Ended::Final
                },
            }
        };
    }

    /// `http.response.trailers`.
    pub fn trailers(&mut self, n: Names, fields: &Fields, r: &mut Report<'_>) {
        let s = self.start_at;
        match self.state {
            State::Init => r.add(
                "trailers-not-announced",
                format!(
                    "http.response.trailers, but {}; trailers need a start with trailers: 1 and a complete body",
                    self.describe(n)
                ),
            ),
            State::Body { .. } | State::Complete { .. } if !self.announced => r.add(
                "trailers-not-announced",
                format!(
                    "http.response.trailers, but the http.response.start at event #{s} said trailers: 0 ({}); only trailers: 1 allows them",
                    self.describe(n)
                ),
            ),
            State::Body { .. } => r.add(
                "trailers-before-body-end",
                format!(
                    "http.response.trailers before the final body piece: {}; trailers follow a piece with more: 0",
                    self.describe(n)
                ),
            ),
            State::Complete { .. } => r.add(
                "duplicate-trailers",
                format!(
                    "http.response.trailers, but {}; trailers are sent once, and only before the response is complete",
                    self.describe(n)
                ),
            ),
            State::Trailers { .. } => {}
        }
        r.fields(fields);
        if !r.rejected() {
            self.state = State::Complete {
                at: r.index(),
                how: Ended::Trailers,
            };
        }
    }

    /// The call returned Ok (and the client is still there).
    pub fn returned(&self, n: Names, r: &mut Report<'_>) {
        let s = self.start_at;
        match self.state {
            State::Init => r.add(
                "missing-response",
                format!(
                    "no {} was ever accepted; a call must answer its request, so the server answers 500 Internal Server Error instead (the backstop)",
                    n.start
                ),
            ),
            State::Body { last: None, .. } => r.add(
                "missing-final-body",
                format!(
                    "the response started at event #{s} but no {} followed; the body ends with a piece with more: 0 (or a file), so the response is left incomplete and the connection is closed",
                    n.body
                ),
            ),
            State::Body { last: Some(l), .. } => r.add(
                "missing-final-body",
                format!(
                    "the last {} (event #{l}) had more: 1 and no final piece followed; the body ends with a piece with more: 0 (or a file), so the client gets a truncated response and the connection is closed",
                    n.body
                ),
            ),
            State::Trailers { at } => r.add(
                "missing-trailers",
                format!(
                    "the http.response.start at event #{s} said trailers: 1 and the body ended at event #{at}, but no http.response.trailers followed; an app that announces trailers must send them (even with no fields), so the server closes the connection without finishing the response"
                ),
            ),
            State::Complete { .. } => {}
        }
    }
}

/// `status-range`: a final status, 200..=999.
pub(crate) fn check_status(kind: &str, status: u16, r: &mut Report<'_>) {
    if !(200..=999).contains(&status) {
        let why = if status < 200 {
            " (1xx responses are the server's, and 101 cannot be sent this way)"
        } else {
            ""
        };
        r.add(
            "status-range",
            format!("{kind} has status {status}, outside 200..=999{why}"),
        );
    }
}
