//! The `sse` scope: either a stream (`sse.start`, then events) or a declining HTTP response
//! (`sse.http.response.*`, see [`Response`]), ended by `sse.close` or the call's return.

use super::fields::{Facts, Piece, Sent};
use super::response::{check_status, Names, Response};
use super::{Info, Report};

const DECLINE: Names = Names {
    start: "sse.http.response.start",
    body: "sse.http.response.body",
};

/// `sse.close` during a decline completes the response with an empty last piece.
const CLOSE_DECLINE: Names = Names {
    start: "sse.http.response.start",
    body: "sse.close (which ends the declining body)",
};

#[derive(Clone, Debug, Default)]
pub(crate) struct Sse {
    /// The event index of the accepted `sse.start`.
    stream: Option<usize>,
    /// The declining response, if one was started.
    decline: Response,
    /// The event index of the first `sse.close`.
    closed: Option<usize>,
}

impl Sse {
    pub fn send(&mut self, sent: &Sent, info: &Info, r: &mut Report<'_>) {
        let kind = sent.kind;
        let at = r.index();
        if let Some(closed) = self.closed {
            if kind != "sse.close" {
                r.add(
                    "event-after-close",
                    format!(
                        "{kind} after sse.close at event #{closed}; the stream is over, and only another sse.close (a no-op) may follow"
                    ),
                );
            }
            return;
        }
        let declined = self.decline.started();
        match (kind, &sent.facts) {
            ("sse.start", Facts::Start { status, fields, .. }) => {
                if let Some(start) = self.stream {
                    r.add(
                        "duplicate-start",
                        format!(
                            "a second sse.start (status {status}): the stream started at event #{start}; a stream has one start"
                        ),
                    );
                } else if declined {
                    self.mixed(kind, r);
                }
                check_status(kind, *status, r);
                r.fields(fields);
                if let Some(n) = fields.content_length {
                    r.add(
                        "content-length-on-stream",
                        format!(
                            "sse.start gives a content-length of {n}, which frames the stream with that length; an app should not give one, since a stream's length is unknown"
                        ),
                    );
                }
                if !r.rejected() {
                    self.stream = Some(at);
                }
            }
            ("sse.http.response.start", _) => {
                if self.stream.is_some() {
                    self.mixed(kind, r);
                    return;
                }
                self.decline.start(DECLINE, sent, info, r);
            }
            ("sse.http.response.body", Facts::Body(piece)) => {
                if self.stream.is_some() {
                    self.mixed(kind, r);
                    return;
                }
                self.decline.body(DECLINE, piece, r);
            }
            ("sse.send" | "sse.comment", facts) => {
                if let Facts::SseSend { bad_event, bad_id } = facts {
                    if *bad_event {
                        r.add(
                            "sse-event-field",
                            "sse.send has an event containing CR or LF, which would break the event-stream format; the server does not repair it, and nothing is written",
                        );
                    }
                    if *bad_id {
                        r.add(
                            "sse-id-field",
                            "sse.send has an id containing CR, LF or NUL, which would break the event-stream format; the server does not repair it, and nothing is written",
                        );
                    }
                }
                if declined {
                    self.mixed(kind, r);
                } else if self.stream.is_none() {
                    r.add(
                        "event-before-start",
                        format!("{kind} before sse.start: the stream has not started, and events follow sse.start"),
                    );
                }
            }
            // Allowed before the start (it takes effect with it) and while streaming.
            ("sse.keepalive", _) if declined => self.mixed(kind, r),
            ("sse.close", _) => {
                if declined && !self.decline.complete() {
                    let end = Piece {
                        len: 0,
                        file: None,
                        more: false,
                    };
                    self.decline.body(CLOSE_DECLINE, &end, r);
                }
                self.closed = Some(at);
            }
            _ => {}
        }
    }

    /// `mixed-response`: a stream event on a declined stream, or the reverse.
    fn mixed(&self, kind: &str, r: &mut Report<'_>) {
        let what = match self.stream {
            Some(start) => format!("the stream was started with sse.start at event #{start}"),
            None => "the stream was declined with sse.http.response.start".to_string(),
        };
        r.add(
            "mixed-response",
            format!(
                "{kind}, but {what}; the first start decides, and a stream is never both started and declined"
            ),
        );
    }

    pub fn returned(&self, gone: bool, r: &mut Report<'_>) {
        if gone || self.stream.is_some() {
            return;
        }
        if self.decline.started() {
            if self.closed.is_none() {
                self.decline.returned(DECLINE, r);
            }
            return;
        }
        let closed = match self.closed {
            Some(c) => {
                format!(" (the sse.close at event #{c} came before any start, so nothing was sent)")
            }
            None => String::new(),
        };
        r.add(
            "missing-response",
            format!(
                "neither sse.start nor sse.http.response.start was ever accepted{closed}; a call must answer its request, so the server answers 500 Internal Server Error instead (the backstop)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use pagi::{Bytes, DisconnectReason, Headers, ReceiveEvent, SendEvent};
    use std::time::Duration;

    fn start() -> Ev {
        Ev::S(SendEvent::SseStart {
            status: 200,
            headers: Headers::new(),
        })
    }

    fn decline(headers: Headers) -> Ev {
        Ev::S(SendEvent::SseHttpResponseStart {
            status: 204,
            headers,
        })
    }

    fn decline_body(b: &'static str, more: bool) -> Ev {
        Ev::S(SendEvent::SseHttpResponseBody(piece(b, None, more)))
    }

    fn event(event: Option<&str>, id: Option<&str>) -> Ev {
        Ev::S(SendEvent::SseSend {
            event: event.map(Into::into),
            data: "line 1\nline 2".into(),
            id: id.map(Into::into),
            retry: None,
        })
    }

    fn comment() -> Ev {
        Ev::S(SendEvent::SseComment {
            comment: "note".into(),
        })
    }

    fn keepalive() -> Ev {
        Ev::S(SendEvent::SseKeepalive {
            interval: Duration::from_secs(15),
            comment: None,
        })
    }

    fn close() -> Ev {
        Ev::S(SendEvent::SseClose {
            reason: "done".into(),
        })
    }

    #[test]
    fn correct_exchanges() {
        clean(&run(
            &sse(),
            vec![
                Ev::R(ReceiveEvent::SseRequest {
                    body: Bytes::new(),
                    more: false,
                }),
                keepalive(),
                start(),
                event(Some("tick"), Some("7")),
                comment(),
                keepalive(),
                close(),
                close(),
                Ev::R(ReceiveEvent::SseDisconnect {
                    reason: DisconnectReason::Custom("x-closed".into()),
                }),
            ],
            Some(true),
        ));
        // Returning after sse.start is a clean end.
        clean(&run(
            &sse(),
            vec![start(), event(None, Some(""))],
            Some(true),
        ));
        // Declines.
        clean(&run(
            &sse(),
            vec![decline(Headers::new()), decline_body("", false)],
            Some(true),
        ));
        clean(&run(
            &sse(),
            vec![decline(Headers::new()), decline_body("a", true), close()],
            Some(true),
        ));
    }

    #[test]
    fn event_before_start() {
        only(
            &run(&sse(), vec![event(None, None)], None),
            "event-before-start",
            &[
                "event #0 (sent sse.send)",
                "sse.send before sse.start",
                "out of order",
            ],
        );
        only(
            &run(&sse(), vec![comment()], None),
            "event-before-start",
            &["sse.comment before sse.start"],
        );
    }

    #[test]
    fn mixed_response() {
        only(
            &run(&sse(), vec![start(), decline(Headers::new())], None),
            "mixed-response",
            &["sse.http.response.start, but the stream was started with sse.start at event #0"],
        );
        only(
            &run(&sse(), vec![start(), decline_body("x", false)], None),
            "mixed-response",
            &["sse.http.response.body"],
        );
        for ev in [start(), event(None, None), comment(), keepalive()] {
            only(
                &run(&sse(), vec![decline(Headers::new()), ev], None),
                "mixed-response",
                &["the stream was declined"],
            );
        }
    }

    #[test]
    fn duplicate_start() {
        only(
            &run(&sse(), vec![start(), start()], None),
            "duplicate-start",
            &["a second sse.start (status 200): the stream started at event #0"],
        );
        only(
            &run(
                &sse(),
                vec![decline(Headers::new()), decline(Headers::new())],
                None,
            ),
            "duplicate-start",
            &["a second sse.http.response.start (status 204)"],
        );
    }

    #[test]
    fn decline_body_rules() {
        only(
            &run(&sse(), vec![decline_body("x", false)], None),
            "body-before-start",
            &["sse.http.response.body before sse.http.response.start"],
        );
        only(
            &run(
                &sse(),
                vec![
                    decline(Headers::new()),
                    decline_body("", false),
                    decline_body("", false),
                ],
                None,
            ),
            "body-after-complete",
            &["the final body piece (more: 0) was event #1"],
        );
        let cl = Headers::new().with("content-length", "4");
        let ok = SendEvent::SseHttpResponseStart {
            status: 200,
            headers: cl,
        };
        only(
            &run(
                &sse(),
                vec![Ev::S(ok.clone()), decline_body("ab", false)],
                None,
            ),
            "content-length-mismatch",
            &["ends the body at 2 bytes, short of its content-length of 4"],
        );
        only(
            &run(
                &sse(),
                vec![Ev::S(ok), decline_body("ab", true), close()],
                Some(true),
            ),
            "content-length-mismatch",
            &[
                "event #2 (sent sse.close)",
                "sse.close (which ends the declining body) ends the body at 2 bytes",
            ],
        );
        only(
            &run(
                &sse(),
                vec![
                    decline(Headers::new()),
                    Ev::S(SendEvent::SseHttpResponseBody(piece(
                        "",
                        Some("rel/x"),
                        false,
                    ))),
                ],
                None,
            ),
            "file-not-absolute",
            &[r#""rel/x""#],
        );
    }

    #[test]
    fn event_fields() {
        only(
            &run(&sse(), vec![start(), event(Some("a\nb"), None)], None),
            "sse-event-field",
            &["event containing CR or LF", "(invalid)"],
        );
        for id in ["1\r", "1\n2", "a\0"] {
            only(
                &run(&sse(), vec![start(), event(None, Some(id))], None),
                "sse-id-field",
                &["id containing CR, LF or NUL"],
            );
        }
        // data may hold anything.
        clean(&run(
            &sse(),
            vec![
                start(),
                Ev::S(SendEvent::SseSend {
                    event: None,
                    data: "a\r\nb\0".into(),
                    id: None,
                    retry: Some(1),
                }),
            ],
            Some(true),
        ));
    }

    #[test]
    fn start_fields() {
        only(
            &run(
                &sse(),
                vec![Ev::S(SendEvent::SseStart {
                    status: 99,
                    headers: Headers::new(),
                })],
                None,
            ),
            "status-range",
            &["sse.start has status 99"],
        );
        only(
            &run(
                &sse(),
                vec![Ev::S(SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new().with("content-length", "10"),
                })],
                Some(true),
            ),
            "content-length-on-stream",
            &["a content-length of 10"],
        );
        only(
            &run(&sse(), vec![decline(Headers::new().with("x y", "1"))], None),
            "header-name",
            &[r#""x y""#],
        );
        only(
            &run(
                &sse(),
                vec![Ev::S(SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new().with("transfer-encoding", "chunked"),
                })],
                Some(true),
            ),
            "dropped-header",
            &["the server alone chooses the framing"],
        );
    }

    #[test]
    fn event_after_close() {
        only(
            &run(
                &sse(),
                vec![start(), close(), event(None, None)],
                Some(true),
            ),
            "event-after-close",
            &["event #2 (sent sse.send)", "after sse.close at event #1"],
        );
        only(
            &run(&sse(), vec![close(), start()], None),
            "event-after-close",
            &["sse.start after sse.close at event #0"],
        );
    }

    #[test]
    fn missing_response() {
        only(
            &run(&sse(), vec![], Some(true)),
            "missing-response",
            &["neither sse.start nor sse.http.response.start", "500"],
        );
        only(
            &run(&sse(), vec![keepalive(), close()], Some(true)),
            "missing-response",
            &["the sse.close at event #1 came before any start"],
        );
        only(
            &run(
                &sse(),
                vec![decline(Headers::new()), decline_body("a", true)],
                Some(true),
            ),
            "missing-final-body",
            &["the last sse.http.response.body (event #1) had more: 1"],
        );
        clean(&run(
            &sse(),
            vec![Ev::R(ReceiveEvent::SseDisconnect {
                reason: DisconnectReason::ClientClosed,
            })],
            Some(true),
        ));
    }
}
