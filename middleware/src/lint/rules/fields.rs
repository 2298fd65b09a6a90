//! Stateless facts about one sent event: header-field problems, the declared content-length,
//! body sizes. Computed once per event (without copying payloads), then judged by the scope's
//! state machine.

use pagi::headers::{is_field_value, is_token, refused_in_early_hint};
use pagi::{Headers, ResponseBody, SendEvent};

/// A problem found in one field of a header list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Issue {
    /// The rule id.
    pub rule: &'static str,
    /// The message body (what is wrong with which field).
    pub text: String,
}

/// What a header list says, and what is wrong with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    /// Problems, in field order.
    pub issues: Vec<Issue>,
    /// The content-length, when every content-length field is valid and they agree.
    pub content_length: Option<u64>,
}

/// Which fields of a header list the server drops (and the lint reports as `dropped-header`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A final response (`http.response.start`, `sse.start`, `sse.http.response.start`):
    /// `transfer-encoding`, and `connection` options other than `close`. `content-length` is
    /// checked.
    Response,
    /// Trailer fields: nothing is dropped, and `content-length` is not checked.
    Trailers,
    /// `websocket.accept`: the handshake fields.
    Accept,
    /// `websocket.http.response.start`: `content-length`, `transfer-encoding`, `connection`.
    Denial,
    /// `http.response.early_hint`: the fields of `pagi::headers::EARLY_HINT_REFUSED` make the
    /// send fail (`early-hint-field`); nothing is dropped.
    EarlyHint,
}

const ACCEPT_OWNED: &[&str] = &[
    "upgrade",
    "connection",
    "transfer-encoding",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
];

const DENIAL_OWNED: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// Shows bytes as text for a message, escaping what is not printable ASCII.
pub(crate) fn show(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t'));
    let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &b[s..=e],
        _ => &[],
    }
}

/// Checks a header list sent by the app.
pub(crate) fn check(headers: &Headers, owner: Owner) -> Fields {
    let what = if owner == Owner::Trailers {
        "trailer field"
    } else {
        "header field"
    };
    let mut out = Fields::default();
    let mut length: Option<(usize, u64)> = None;
    let mut length_broken = false;
    for (i, (name, value)) in headers.iter().enumerate() {
        if !is_token(name) {
            out.issues.push(Issue {
                rule: "header-name",
                text: format!(
                    "{what} {i} has the name {}, which is not an RFC 9110 token",
                    show(name)
                ),
            });
        }
        if !is_field_value(value) {
            out.issues.push(Issue {
                rule: "header-value",
                text: format!(
                    "{what} {i} ({}) has the value {}, which contains CR, LF or NUL",
                    show(name),
                    show(value)
                ),
            });
        }
        if owner == Owner::EarlyHint {
            if refused_in_early_hint(name) {
                out.issues.push(Issue {
                    rule: "early-hint-field",
                    text: format!(
                        "{what} {i} ({}) is connection-specific or frames a body, which a 103 Early Hints cannot carry; the server refuses the event",
                        show(name)
                    ),
                });
            }
            continue;
        }
        let owned = match owner {
            Owner::Response | Owner::Trailers | Owner::EarlyHint => &[][..],
            Owner::Accept => ACCEPT_OWNED,
            Owner::Denial => DENIAL_OWNED,
        };
        if let Some(owned) = owned
            .iter()
            .find(|o| name.eq_ignore_ascii_case(o.as_bytes()))
        {
            let hint = match *owned {
                "sec-websocket-protocol" => "; choose it with the subprotocol key instead",
                _ => "",
            };
            out.issues.push(Issue {
                rule: "dropped-header",
                text: format!(
                    "{what} {i} ({}) belongs to the server, which drops it and writes its own{hint}",
                    show(name)
                ),
            });
            continue;
        }
        if owner != Owner::Response {
            continue;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            out.issues.push(Issue {
                rule: "dropped-header",
                text: format!(
                    "{what} {i} ({}) is ignored and not written: the server alone chooses the framing",
                    show(name)
                ),
            });
        } else if name.eq_ignore_ascii_case(b"connection") {
            let others: Vec<String> = value
                .split(|&b| b == b',')
                .map(trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(b"close"))
                .map(show)
                .collect();
            if !others.is_empty() {
                out.issues.push(Issue {
                    rule: "dropped-header",
                    text: format!(
                        "{what} {i} ({}) carries the option(s) {}: connection fields are not written, and only the token \"close\" has an effect",
                        show(name),
                        others.join(", ")
                    ),
                });
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (n, length) {
                (None, _) => {
                    length_broken = true;
                    out.issues.push(Issue {
                        rule: "content-length-value",
                        text: format!(
                            "{what} {i} ({}) has the value {}, which is not one or more digits",
                            show(name),
                            show(value)
                        ),
                    });
                }
                (Some(n), Some((j, m))) if n != m => {
                    length_broken = true;
                    out.issues.push(Issue {
                        rule: "content-length-conflict",
                        text: format!(
                            "{what} {i} (content-length: {n}) disagrees with field {j} (content-length: {m}); repeated content-length fields must agree"
                        ),
                    });
                }
                (Some(n), None) => length = Some((i, n)),
                (Some(_), Some(_)) => {}
            }
        }
    }
    if !length_broken {
        out.content_length = length.map(|(_, n)| n);
    }
    out
}

/// The `file` of a body piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FileRef {
    /// An absolute path (what the spec requires).
    Absolute,
    /// A relative path, as given.
    Relative(String),
}

/// A body piece (`http.response.body`, `sse.http.response.body`,
/// `websocket.http.response.body`), without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    /// The number of bytes in `body`.
    pub len: u64,
    /// The file the piece names, if any.
    pub file: Option<FileRef>,
    /// The `more` flag as sent (a file ignores it).
    pub more: bool,
}

impl Piece {
    fn of(b: &ResponseBody) -> Piece {
        Piece {
            len: b.bytes.len() as u64,
            file: b.file.as_ref().map(|p| {
                if p.is_absolute() {
                    FileRef::Absolute
                } else {
                    FileRef::Relative(p.display().to_string())
                }
            }),
            more: b.more,
        }
    }

    /// Whether the piece ends the body: `more: 0`, or a file.
    pub fn is_final(&self) -> bool {
        self.file.is_some() || !self.more
    }
}

/// The facts the rules need about a sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Facts {
    /// `http.response.start`, `sse.start`, `sse.http.response.start`,
    /// `websocket.http.response.start`.
    Start {
        status: u16,
        trailers: bool,
        fields: Fields,
    },
    /// A body piece of any kind.
    Body(Piece),
    /// `http.response.trailers`.
    Trailers(Fields),
    /// `http.response.early_hint`.
    EarlyHint(Fields),
    /// `websocket.accept`.
    Accept {
        subprotocol: Option<String>,
        fields: Fields,
    },
    /// `websocket.close`.
    Close { code: u16, reason_len: usize },
    /// `sse.send`: whether `event` and `id` would break the stream's format.
    SseSend { bad_event: bool, bad_id: bool },
    /// Everything else: only the type matters.
    Plain,
}

/// A digest of a sent event: its type and the [`Facts`] the rules judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The event's `type`.
    pub kind: &'static str,
    /// What the rules need to know about it.
    pub facts: Facts,
}

impl Sent {
    /// Digests `event`. Cheap: header lists are scanned, payloads are not copied.
    pub fn of(event: &SendEvent) -> Sent {
        let facts = match event {
            SendEvent::HttpResponseStart {
                status,
                headers,
                trailers,
            } => Facts::Start {
                status: *status,
                trailers: *trailers,
                fields: check(headers, Owner::Response),
            },
            SendEvent::SseStart { status, headers }
            | SendEvent::SseHttpResponseStart { status, headers } => Facts::Start {
                status: *status,
                trailers: false,
                fields: check(headers, Owner::Response),
            },
            SendEvent::WebsocketHttpResponseStart { status, headers } => Facts::Start {
                status: *status,
                trailers: false,
                fields: check(headers, Owner::Denial),
            },
            SendEvent::HttpResponseBody(b)
            | SendEvent::SseHttpResponseBody(b)
            | SendEvent::WebsocketHttpResponseBody(b) => Facts::Body(Piece::of(b)),
            SendEvent::HttpResponseTrailers { headers } => {
                Facts::Trailers(check(headers, Owner::Trailers))
            }
            SendEvent::HttpResponseEarlyHint { headers } => {
                Facts::EarlyHint(check(headers, Owner::EarlyHint))
            }
            SendEvent::WebsocketAccept {
                subprotocol,
                headers,
            } => Facts::Accept {
                subprotocol: subprotocol.clone(),
                fields: check(headers, Owner::Accept),
            },
            SendEvent::WebsocketClose { code, reason } => Facts::Close {
                code: *code,
                reason_len: reason.len(),
            },
            SendEvent::SseSend { event, id, .. } => {
                let breaks = |s: &str, nul: bool| {
                    s.bytes()
                        .any(|b| b == b'\r' || b == b'\n' || (nul && b == 0))
                };
                Facts::SseSend {
                    bad_event: event.as_deref().is_some_and(|e| breaks(e, false)),
                    bad_id: id.as_deref().is_some_and(|i| breaks(i, true)),
                }
            }
            _ => Facts::Plain,
        };
        Sent {
            kind: event.kind(),
            facts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(f: &Fields) -> Vec<&'static str> {
        f.issues.iter().map(|i| i.rule).collect()
    }

    #[test]
    fn clean_response_fields() {
        let h = Headers::new()
            .with("Content-Type", "text/plain")
            .with("content-length", "5")
            .with("Content-Length", "5")
            .with("connection", "close")
            .with("set-cookie", "a=1");
        let f = check(&h, Owner::Response);
        assert_eq!(f.issues, []);
        assert_eq!(f.content_length, Some(5));
    }

    #[test]
    fn response_field_problems() {
        let h = Headers::new()
            .with("bad name", "x")
            .with("x-a", "1\r\n2")
            .with("content-length", "5 ")
            .with("transfer-encoding", "chunked")
            .with("connection", "close, Keep-Alive");
        let f = check(&h, Owner::Response);
        assert_eq!(
            rules(&f),
            [
                "header-name",
                "header-value",
                "content-length-value",
                "dropped-header",
                "dropped-header"
            ]
        );
        assert_eq!(f.content_length, None);
        assert!(
            f.issues[1].text.contains(r#""1\r\n2""#),
            "{}",
            f.issues[1].text
        );
        assert!(f.issues[4].text.contains(r#""Keep-Alive""#));
    }

    #[test]
    fn conflicting_lengths() {
        let h = Headers::new()
            .with("content-length", "5")
            .with("content-length", "6");
        let f = check(&h, Owner::Response);
        assert_eq!(rules(&f), ["content-length-conflict"]);
        assert!(f.issues[0]
            .text
            .contains("field 1 (content-length: 6) disagrees with field 0"));
        assert_eq!(f.content_length, None);
    }

    #[test]
    fn handshake_fields_are_the_servers() {
        let h = Headers::new()
            .with("Sec-WebSocket-Protocol", "chat")
            .with("set-cookie", "a=1")
            .with("content-length", "x");
        assert_eq!(
            rules(&check(&h, Owner::Accept)),
            ["dropped-header", "dropped-header"]
        );
        let h = Headers::new().with("connection", "close").with("x", "y");
        assert_eq!(rules(&check(&h, Owner::Denial)), ["dropped-header"]);
        // Trailers: only the token and value rules.
        let h = Headers::new()
            .with("transfer-encoding", "x")
            .with("a", "\0");
        assert_eq!(rules(&check(&h, Owner::Trailers)), ["header-value"]);
    }

    #[test]
    fn early_hint_fields() {
        let h = Headers::new()
            .with("Link", "</a.css>; rel=preload; as=style")
            .with("Connection", "close")
            .with("content-length", "x")
            .with("bad name", "1")
            .with("x-a", "\r");
        let f = check(&h, Owner::EarlyHint);
        assert_eq!(
            rules(&f),
            [
                "early-hint-field",
                "early-hint-field",
                "header-name",
                "header-value"
            ]
        );
        assert!(
            f.issues[0].text.contains(r#"field 1 ("Connection")"#),
            "{}",
            f.issues[0].text
        );
        assert_eq!(f.content_length, None, "a 103 frames nothing");
        let ok = Headers::new().with("link", "</a.js>; rel=preload; as=script");
        assert_eq!(check(&ok, Owner::EarlyHint).issues, []);
    }
}
