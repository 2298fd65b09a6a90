//! The `websocket` scope: answer `websocket.connect` once (accept, refuse or deny), then
//! messages until a close.

use super::fields::{Facts, Sent};
use super::response::check_status;
use super::{Info, Report};

/// The longest close reason a Close frame can carry (RFC 6455 §5.5: 125 bytes, less the code).
const MAX_REASON: usize = 123;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// `websocket.connect` not answered yet.
    #[default]
    Connecting,
    /// A denial response started at `start`; `last` is its last piece with `more: 1`.
    Denying { start: usize, last: Option<usize> },
    /// Accepted at `accept`.
    Open { accept: usize },
    /// Accepted at `accept`, closed by the app at `close`.
    Closing { accept: usize, close: usize },
    /// Refused with `websocket.close` before the accept (403) at `at`.
    Refused { at: usize },
    /// Denied: the denial response ended at `at`.
    Denied { at: usize },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Websocket {
    state: State,
}

/// Close codes an endpoint may send (RFC 6455 §7.4).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Websocket {
    pub fn send(&mut self, sent: &Sent, info: &Info, r: &mut Report<'_>) {
        let kind = sent.kind;
        let at = r.index();
        if kind.starts_with("websocket.http.response.") && !info.denial {
            r.add(
                "extension-not-advertised",
                format!(
                    "{kind}, but the scope does not advertise the websocket.http.response extension; an app checks scope.extensions before using an extension"
                ),
            );
            return;
        }
        match self.state {
            State::Refused { at: refused } => {
                r.add(
                    "event-after-close",
                    format!(
                        "{kind} after the app refused the connection with websocket.close at event #{refused} (403 Forbidden); the connection is closed and the server treats every send as a no-op"
                    ),
                );
                return;
            }
            State::Denied { at: denied } => {
                r.add(
                    "event-after-close",
                    format!(
                        "{kind} after the denial response ended at event #{denied}; the connection is closed and the server treats every send as a no-op"
                    ),
                );
                return;
            }
            _ => {}
        }
        match (kind, &sent.facts) {
            ("websocket.accept", Facts::Accept { subprotocol, fields }) => {
                match self.state {
                    State::Open { accept } => r.add(
                        "accept-out-of-order",
                        format!(
                            "a second websocket.accept: the connection was accepted at event #{accept}; websocket.connect gets exactly one answer"
                        ),
                    ),
                    State::Closing { accept, close } => r.add(
                        "accept-out-of-order",
                        format!(
                            "websocket.accept after the connection was accepted at event #{accept} and closed by the app at event #{close}; websocket.connect gets exactly one answer"
                        ),
                    ),
                    State::Denying { start, .. } => r.add(
                        "accept-out-of-order",
                        format!(
                            "websocket.accept during the denial response started at event #{start}; the denial is already the answer to websocket.connect"
                        ),
                    ),
                    _ => {}
                }
                if let Some(p) = subprotocol {
                    if !info.subprotocols.contains(p) {
                        let offered = if info.subprotocols.is_empty() {
                            "none".to_string()
                        } else {
                            format!("{:?}", info.subprotocols)
                        };
                        r.add(
                            "subprotocol-not-offered",
                            format!(
                                "websocket.accept chose the subprotocol {p:?}, which the client did not offer (it offered {offered}); the connection stays unanswered"
                            ),
                        );
                    }
                }
                r.fields(fields);
                if !r.rejected() {
                    self.state = State::Open { accept: at };
                }
            }
            ("websocket.send", _) => match self.state {
                State::Connecting => r.add(
                    "send-before-accept",
                    "websocket.send before websocket.accept: websocket.connect has not been answered; messages need an accepted connection",
                ),
                State::Denying { start, .. } => r.add(
                    "send-before-accept",
                    format!(
                        "websocket.send during the denial response started at event #{start}; messages need an accepted connection"
                    ),
                ),
                State::Closing { close, .. } => r.add(
                    "send-after-close",
                    format!(
                        "websocket.send after the app's own websocket.close at event #{close}; once the Close frame is out no message may follow, and the server drops it"
                    ),
                ),
                _ => {}
            },
            ("websocket.close", Facts::Close { code, reason_len }) => match self.state {
                State::Connecting => self.state = State::Refused { at },
                State::Denying { start, .. } => r.add(
                    "close-during-denial",
                    format!(
                        "websocket.close during the denial response started at event #{start}; finish the denial with a websocket.http.response.body with more: 0 instead"
                    ),
                ),
                State::Open { accept } => {
                    if !sendable(*code) {
                        r.add(
                            "close-code",
                            format!(
                                "websocket.close with code {code} after the accept; an endpoint may send only 1000-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4), and nothing is sent"
                            ),
                        );
                    }
                    if *reason_len > MAX_REASON {
                        r.add(
                            "close-reason-too-long",
                            format!(
                                "websocket.close with a reason of {reason_len} bytes; a Close frame carries at most {MAX_REASON}, so the server cuts it at a character boundary"
                            ),
                        );
                    }
                    if !r.rejected() {
                        self.state = State::Closing { accept, close: at };
                    }
                }
                _ => {}
            },
            ("websocket.http.response.start", Facts::Start { status, fields, .. }) => {
                match self.state {
                    State::Connecting => {
                        check_status(kind, *status, r);
                        r.fields(fields);
                        if !r.rejected() {
                            self.state = State::Denying {
                                start: at,
                                last: None,
                            };
                        }
                    }
                    State::Denying { start, .. } => r.add(
                        "duplicate-start",
                        format!(
                            "a second websocket.http.response.start (status {status}): the denial response started at event #{start}; a denial has one start"
                        ),
                    ),
                    State::Open { accept } | State::Closing { accept, .. } => {
                        self.after_accept(kind, accept, r)
                    }
                    _ => {}
                }
            }
            ("websocket.http.response.body", Facts::Body(piece)) => {
                if piece.file.is_some() {
                    r.add(
                        "file-not-supported",
                        "websocket.http.response.body names a file; a denial body takes bytes only",
                    );
                }
                match self.state {
                    State::Connecting => r.add(
                        "body-before-start",
                        "websocket.http.response.body before websocket.http.response.start; a denial response begins with its start",
                    ),
                    State::Denying { start, .. } if !r.rejected() => {
                        self.state = if piece.more {
                            State::Denying {
                                start,
                                last: Some(at),
                            }
                        } else {
                            State::Denied { at }
                        };
                    }
                    State::Open { accept } | State::Closing { accept, .. } => {
                        self.after_accept(kind, accept, r)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn after_accept(&self, kind: &str, accept: usize, r: &mut Report<'_>) {
        r.add(
            "denial-after-accept",
            format!(
                "{kind} after the connection was accepted at event #{accept}; denial events are valid only before the accept, and the server ignores this one"
            ),
        );
    }

    pub fn returned(&self, gone: bool, r: &mut Report<'_>) {
        if gone {
            return;
        }
        match self.state {
            State::Connecting => r.add(
                "missing-answer",
                "websocket.connect was never answered (websocket.accept, websocket.close, or a denial response); the server answers 500 Internal Server Error",
            ),
            State::Denying { start, last: None } => r.add(
                "missing-final-body",
                format!(
                    "the denial response started at event #{start} but no websocket.http.response.body followed; it ends with a piece with more: 0 (the server sends the head with an empty body)"
                ),
            ),
            State::Denying {
                last: Some(last), ..
            } => r.add(
                "missing-final-body",
                format!(
                    "the last websocket.http.response.body (event #{last}) had more: 1 and no final piece followed; the client gets the denial response cut short"
                ),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use pagi::{Headers, HttpScope, Message, Method, ReceiveEvent, Scope, SendEvent};
    use std::time::Duration;

    fn connect() -> Ev {
        Ev::R(ReceiveEvent::WebsocketConnect)
    }

    fn accept(subprotocol: Option<&str>) -> Ev {
        Ev::S(SendEvent::WebsocketAccept {
            subprotocol: subprotocol.map(Into::into),
            headers: Headers::new(),
        })
    }

    fn text(t: &str) -> Ev {
        Ev::S(SendEvent::WebsocketSend(Message::Text(t.into())))
    }

    fn close(code: u16) -> Ev {
        Ev::S(SendEvent::WebsocketClose {
            code,
            reason: String::new(),
        })
    }

    fn deny(status: u16) -> Ev {
        Ev::S(SendEvent::WebsocketHttpResponseStart {
            status,
            headers: Headers::new().with("www-authenticate", "Bearer"),
        })
    }

    fn deny_body(more: bool) -> Ev {
        Ev::S(SendEvent::WebsocketHttpResponseBody(piece(
            "no", None, more,
        )))
    }

    #[test]
    fn correct_exchanges() {
        clean(&run(
            &websocket(),
            vec![
                connect(),
                Ev::S(SendEvent::WebsocketKeepalive {
                    interval: Duration::from_secs(20),
                    timeout: None,
                }),
                Ev::S(SendEvent::WebsocketAccept {
                    subprotocol: Some("chat.v2".into()),
                    headers: Headers::new().with("set-cookie", "sid=1"),
                }),
                Ev::R(ReceiveEvent::WebsocketReceive(Message::Text("hi".into()))),
                text("HI"),
                close(4001),
                close(1000),
                Ev::R(ReceiveEvent::WebsocketDisconnect {
                    code: 4001,
                    reason: String::new(),
                }),
            ],
            Some(true),
        ));
        // Returning after the accept is a correct close.
        clean(&run(
            &websocket(),
            vec![connect(), accept(None)],
            Some(true),
        ));
        // Refusals: 403, and a denial response.
        clean(&run(&websocket(), vec![connect(), close(1000)], Some(true)));
        clean(&run(
            &websocket(),
            vec![connect(), deny(401), deny_body(true), deny_body(false)],
            Some(true),
        ));
        // The client left before the answer.
        clean(&run(
            &websocket(),
            vec![
                connect(),
                Ev::R(ReceiveEvent::WebsocketDisconnect {
                    code: 1006,
                    reason: "client_closed".into(),
                }),
            ],
            Some(true),
        ));
    }

    #[test]
    fn send_before_accept() {
        only(
            &run(&websocket(), vec![connect(), text("x")], None),
            "send-before-accept",
            &[
                "event #1 (sent websocket.send)",
                "websocket.connect has not been answered",
                "out of order",
            ],
        );
        only(
            &run(&websocket(), vec![connect(), deny(403), text("x")], None),
            "send-before-accept",
            &["during the denial response started at event #1"],
        );
    }

    #[test]
    fn accept_out_of_order() {
        only(
            &run(
                &websocket(),
                vec![connect(), accept(None), accept(None)],
                None,
            ),
            "accept-out-of-order",
            &[
                "event #2",
                "a second websocket.accept: the connection was accepted at event #1",
            ],
        );
        only(
            &run(&websocket(), vec![connect(), deny(401), accept(None)], None),
            "accept-out-of-order",
            &["during the denial response started at event #1"],
        );
        only(
            &run(
                &websocket(),
                vec![connect(), accept(None), close(1000), accept(None)],
                None,
            ),
            "accept-out-of-order",
            &["closed by the app at event #2"],
        );
    }

    #[test]
    fn subprotocol_not_offered() {
        only(
            &run(&websocket(), vec![connect(), accept(Some("chat.v3"))], None),
            "subprotocol-not-offered",
            &[
                r#"chose the subprotocol "chat.v3""#,
                r#"it offered ["chat.v1", "chat.v2"]"#,
                "(invalid)",
            ],
        );
        let bare = Scope::Websocket(HttpScope::new(Method::GET, "/"));
        only(
            &run(&bare, vec![connect(), accept(Some("x"))], None),
            "subprotocol-not-offered",
            &["it offered none"],
        );
        // The app may try again.
        only(
            &run(
                &websocket(),
                vec![
                    connect(),
                    accept(Some("nope")),
                    accept(Some("chat.v1")),
                    text("ok"),
                ],
                Some(true),
            ),
            "subprotocol-not-offered",
            &["event #1"],
        );
    }

    #[test]
    fn accept_headers() {
        let found = run(
            &websocket(),
            vec![
                connect(),
                Ev::S(SendEvent::WebsocketAccept {
                    subprotocol: None,
                    headers: Headers::new().with("sec-websocket-protocol", "chat.v1"),
                }),
            ],
            Some(true),
        );
        only(
            &found,
            "dropped-header",
            &["choose it with the subprotocol key instead"],
        );
        only(
            &run(
                &websocket(),
                vec![
                    connect(),
                    Ev::S(SendEvent::WebsocketAccept {
                        subprotocol: None,
                        headers: Headers::new().with("x-a", "1\n"),
                    }),
                ],
                None,
            ),
            "header-value",
            &[r#"header field 0 ("x-a")"#],
        );
    }

    #[test]
    fn close_codes() {
        for code in [999, 1004, 1005, 1006, 1015, 2999, 5000] {
            only(
                &run(
                    &websocket(),
                    vec![connect(), accept(None), close(code)],
                    None,
                ),
                "close-code",
                &[
                    &format!("websocket.close with code {code} after the accept"),
                    "(invalid)",
                ],
            );
        }
        // Before the accept the code is not sent, so not checked.
        clean(&run(&websocket(), vec![connect(), close(5000)], Some(true)));
        let long = Ev::S(SendEvent::WebsocketClose {
            code: 1000,
            reason: "x".repeat(124),
        });
        only(
            &run(
                &websocket(),
                vec![connect(), accept(None), long],
                Some(true),
            ),
            "close-reason-too-long",
            &["a reason of 124 bytes"],
        );
    }

    #[test]
    fn send_after_close() {
        let found = run(
            &websocket(),
            vec![connect(), accept(None), close(1000), text("late")],
            Some(true),
        );
        only(
            &found,
            "send-after-close",
            &["after the app's own websocket.close at event #2"],
        );
        assert!(!found[0].reaction().unwrap().fails_send());
    }

    #[test]
    fn events_after_a_refusal() {
        only(
            &run(&websocket(), vec![connect(), close(1000), accept(None)], Some(true)),
            "event-after-close",
            &["websocket.accept after the app refused the connection with websocket.close at event #1 (403 Forbidden)"],
        );
        only(
            &run(
                &websocket(),
                vec![connect(), deny(401), deny_body(false), deny_body(false)],
                Some(true),
            ),
            "event-after-close",
            &["after the denial response ended at event #2"],
        );
    }

    #[test]
    fn denial_rules() {
        only(
            &run(&websocket(), vec![connect(), deny_body(false)], None),
            "body-before-start",
            &["before websocket.http.response.start"],
        );
        only(
            &run(&websocket(), vec![connect(), deny(401), deny(403)], None),
            "duplicate-start",
            &["a second websocket.http.response.start (status 403)"],
        );
        only(
            &run(&websocket(), vec![connect(), deny(101)], None),
            "status-range",
            &["status 101"],
        );
        only(
            &run(
                &websocket(),
                vec![
                    connect(),
                    deny(401),
                    Ev::S(SendEvent::WebsocketHttpResponseBody(piece(
                        "",
                        Some("/f"),
                        false,
                    ))),
                ],
                None,
            ),
            "file-not-supported",
            &["takes bytes only", "(unsupported)"],
        );
        only(
            &run(&websocket(), vec![connect(), deny(401), close(1000)], None),
            "close-during-denial",
            &["started at event #1"],
        );
        let found = run(
            &websocket(),
            vec![connect(), accept(None), deny(401)],
            Some(true),
        );
        only(
            &found,
            "denial-after-accept",
            &["accepted at event #1", "ignores this one"],
        );
        only(
            &run(
                &websocket(),
                vec![
                    connect(),
                    Ev::S(SendEvent::WebsocketHttpResponseStart {
                        status: 401,
                        headers: Headers::new().with("Content-Length", "3"),
                    }),
                    deny_body(false),
                ],
                Some(true),
            ),
            "dropped-header",
            &[r#""Content-Length""#],
        );
        let bare = Scope::Websocket(HttpScope::new(Method::GET, "/"));
        only(
            &run(&bare, vec![connect(), deny(401)], None),
            "extension-not-advertised",
            &["websocket.http.response extension"],
        );
    }

    #[test]
    fn unanswered_connect() {
        only(
            &run(&websocket(), vec![connect()], Some(true)),
            "missing-answer",
            &[
                "when the call returned Ok after 1 events",
                "websocket.connect was never answered",
                "500",
            ],
        );
        only(
            &run(&websocket(), vec![connect(), deny(401)], Some(true)),
            "missing-final-body",
            &["started at event #1 but no websocket.http.response.body followed"],
        );
        only(
            &run(
                &websocket(),
                vec![connect(), deny(401), deny_body(true)],
                Some(true),
            ),
            "missing-final-body",
            &["(event #2) had more: 1"],
        );
    }
}
