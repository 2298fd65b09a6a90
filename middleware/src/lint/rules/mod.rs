//! The rules as pure state machines: one per scope type, fed with events, returning
//! [`Violation`]s. No I/O, no async: [`Checker`] can lint a recorded exchange (for example one
//! read back from the JSON form) as well as a live one.

mod fields;
mod http;
mod lifespan;
mod response;
mod sse;
mod websocket;

pub(crate) use fields::Sent;

use std::fmt;

use pagi::{HttpVersion, ReceiveEvent, Scope, SendEvent};

use super::violation::{rule, Reaction, Violation};
use fields::Fields;

/// How many times an app may receive the disconnect event before the lint reports
/// `receive-after-disconnect`. After the first one every `receive` yields it again, so an app
/// that keeps receiving it is most likely looping without checking for it.
pub const DISCONNECT_REPEAT_LIMIT: u32 = 10;

/// What a rule needs to know about the scope.
#[derive(Clone, Debug, Default)]
pub(crate) struct Info {
    /// The request method is `HEAD` (no body is framed by a content-length).
    pub head: bool,
    /// The request is HTTP/1.0 (trailers do not make the response chunked).
    pub http10: bool,
    /// The scope advertises `fullflush`.
    pub fullflush: bool,
    /// The scope advertises `http.response.early_hint`.
    pub early_hint: bool,
    /// The scope advertises `websocket.http.response`.
    pub denial: bool,
    /// The subprotocols the WebSocket client offered.
    pub subprotocols: Vec<String>,
}

/// Collects the violations of one event, and words them uniformly.
pub(crate) struct Report<'a> {
    scope: &'static str,
    at: &'a str,
    index: usize,
    out: &'a mut Vec<Violation>,
    rejected: bool,
}

impl Report<'_> {
    /// Reports `rule`, with `detail` saying what happened and what the spec expects.
    pub fn add(&mut self, id: &'static str, detail: impl fmt::Display) {
        let reaction = match rule(self.scope, id) {
            Some(r) => r.reaction,
            None => {
                debug_assert!(false, "rule {}/{id} is not in the catalogue", self.scope);
                Reaction::Tolerated
            }
        };
        self.rejected |= reaction.fails_send();
        self.out.push(Violation {
            scope: self.scope,
            rule: id,
            message: format!("{}: {detail}{}", self.at, reaction.suffix()),
        });
    }

    /// Reports every problem found in a header list.
    pub fn fields(&mut self, fields: &Fields) {
        for issue in &fields.issues {
            self.add(issue.rule, &issue.text);
        }
    }

    /// The index of the event being judged (for a return: the number of events seen).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether a violation reported so far makes a conforming server fail the send.
    pub fn rejected(&self) -> bool {
        self.rejected
    }
}

#[derive(Clone, Debug)]
enum Machine {
    Http(http::Http),
    Websocket(websocket::Websocket),
    Sse(sse::Sse),
    Lifespan(lifespan::Lifespan),
    /// A scope type this crate does not know: nothing is checked.
    Other,
}

/// Checks the events of one app call against the spec's rules for its scope type.
///
/// Feed it every event in order, [`receive`](Checker::receive)d and [`send`](Checker::send)
/// alike, then tell it that the call [`returned`](Checker::returned). Each step returns the
/// violations it found. Events are numbered from 0 in the order they are fed, and messages
/// name them by that index.
///
/// The checker models a conforming server: an event that breaks a rule the server enforces
/// (its `send` would fail) does not change the state, so one mistake is reported once rather
/// than again with every later event. (The one exception is the spec's own: a body that
/// overflows or falls short of its `content-length` still moves the response on.)
///
/// ```
/// use pagi::{Headers, HttpScope, Method, Scope, SendEvent};
/// use pagi_middleware::lint::Checker;
///
/// let mut lint = Checker::new(&Scope::Http(HttpScope::new(Method::GET, "/")));
/// assert_eq!(lint.send(&SendEvent::body("early", false))[0].rule, "body-before-start");
/// assert!(lint.send(&SendEvent::start(200, Headers::new())).is_empty());
/// assert!(lint.send(&SendEvent::body("hello", false)).is_empty());
/// assert!(lint.returned(true).is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Checker {
    scope: &'static str,
    machine: Machine,
    info: Info,
    index: usize,
    returned: bool,
    gone: bool,
    disconnects: u32,
    first_disconnect: usize,
}

impl Checker {
    /// A checker for one call with `scope`. Scope types this crate does not know are not
    /// checked.
    pub fn new(scope: &Scope) -> Checker {
        let mut info = Info::default();
        if let Some(req) = scope.request() {
            info.head = req.method == "HEAD";
            info.http10 = req.http_version == HttpVersion::Http10;
            info.fullflush = req.extensions.fullflush;
            info.early_hint = req.extensions.early_hint;
            info.denial = req.extensions.other.contains_key("websocket.http.response");
            info.subprotocols = req.subprotocols.clone();
        }
        let machine = match scope {
            Scope::Http(_) => Machine::Http(http::Http::default()),
            Scope::Websocket(_) => Machine::Websocket(websocket::Websocket::default()),
            Scope::Sse(_) => Machine::Sse(sse::Sse::default()),
            Scope::Lifespan(_) => Machine::Lifespan(lifespan::Lifespan::default()),
            _ => Machine::Other,
        };
        Checker {
            scope: scope.kind(),
            machine,
            info,
            index: 0,
            returned: false,
            gone: false,
            disconnects: 0,
            first_disconnect: 0,
        }
    }

    /// The app sent `event` (and a conforming server got it).
    pub fn send(&mut self, event: &SendEvent) -> Vec<Violation> {
        self.sent(Sent::of(event), false)
    }

    /// The app sent the event digested as `sent`; `refused` says whether the server failed the
    /// `send`. A refusal the rules do not explain (a file that cannot be opened, say) leaves
    /// the state as it was, as the spec says a failed send does.
    pub(crate) fn sent(&mut self, sent: Sent, refused: bool) -> Vec<Violation> {
        let index = self.next();
        let at = format!("event #{index} (sent {})", sent.kind);
        let mut out = Vec::new();
        let mut r = Report {
            scope: self.scope,
            at: &at,
            index,
            out: &mut out,
            rejected: false,
        };
        if self.returned {
            let what = if self.scope == "websocket" {
                "; the end of the call closed the WebSocket"
            } else {
                ""
            };
            r.add(
                "send-after-return",
                format!(
                    "{} was sent through a Sender kept after the app's call returned; a call's events end with its return{what}",
                    sent.kind
                ),
            );
            return out;
        }
        if matches!(self.machine, Machine::Other) {
            return out;
        }
        if !sent
            .kind
            .strip_prefix(self.scope)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            r.add(
                "wrong-scope",
                format!(
                    "{} does not belong to a {} scope, which takes only {}.* events",
                    sent.kind, self.scope, self.scope
                ),
            );
            return out;
        }
        let before = self.machine.clone();
        match &mut self.machine {
            Machine::Http(m) => m.send(&sent, &self.info, &mut r),
            Machine::Websocket(m) => m.send(&sent, &self.info, &mut r),
            Machine::Sse(m) => m.send(&sent, &self.info, &mut r),
            Machine::Lifespan(m) => m.send(&sent, &mut r),
            Machine::Other => {}
        }
        if refused && !r.rejected() {
            self.machine = before;
        }
        out
    }

    /// The app received `event`.
    pub fn receive(&mut self, event: &ReceiveEvent) -> Vec<Violation> {
        let index = self.next();
        let mut out = Vec::new();
        let disconnect = matches!(
            (self.scope, event),
            ("http", ReceiveEvent::HttpDisconnect)
                | ("websocket", ReceiveEvent::WebsocketDisconnect { .. })
                | ("sse", ReceiveEvent::SseDisconnect { .. })
        );
        if disconnect {
            self.gone = true;
            self.disconnects += 1;
            if self.disconnects == 1 {
                self.first_disconnect = index;
            }
            if self.disconnects == DISCONNECT_REPEAT_LIMIT {
                let at = format!("event #{index} (received {})", event.kind());
                let mut r = Report {
                    scope: self.scope,
                    at: &at,
                    index,
                    out: &mut out,
                    rejected: false,
                };
                r.add(
                    "receive-after-disconnect",
                    format!(
                        "the app has received {} {DISCONNECT_REPEAT_LIMIT} times (first at event #{}); the exchange was over for the app at the first one, and every later receive yields it again, so an app that keeps receiving loops forever; it should stop (the server keeps answering)",
                        event.kind(),
                        self.first_disconnect
                    ),
                );
            }
        }
        if let Machine::Lifespan(m) = &mut self.machine {
            m.receive(event, index);
        }
        out
    }

    /// The client is known to be gone (for example `pagi.connection` says so), so the end of
    /// the call need not have completed the response.
    pub fn client_gone(&mut self) {
        self.gone = true;
    }

    /// The app's call returned: `Ok` when `ok`. Checks that the exchange was complete; a call
    /// that failed is not checked (the server answers for it). Later sends are reported as
    /// `send-after-return`.
    pub fn returned(&mut self, ok: bool) -> Vec<Violation> {
        self.returned = true;
        let mut out = Vec::new();
        if !ok {
            return out;
        }
        let at = format!("when the call returned Ok after {} events", self.index);
        let mut r = Report {
            scope: self.scope,
            at: &at,
            index: self.index,
            out: &mut out,
            rejected: false,
        };
        match &self.machine {
            Machine::Http(m) => m.returned(self.gone, &mut r),
            Machine::Websocket(m) => m.returned(self.gone, &mut r),
            Machine::Sse(m) => m.returned(self.gone, &mut r),
            Machine::Lifespan(m) => m.returned(&mut r),
            Machine::Other => {}
        }
        out
    }

    fn next(&mut self) -> usize {
        self.index += 1;
        self.index - 1
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the rules' unit tests: run a sequence of events, look at what was found.

    use super::*;
    use pagi::{HttpScope, LifespanScope, Method, State};

    /// One step of a scripted exchange.
    #[derive(Debug)]
    pub enum Ev {
        /// The app received this.
        R(ReceiveEvent),
        /// The app sent this (and the server took it).
        S(SendEvent),
        /// The app sent this and the server refused it.
        Refused(SendEvent),
    }

    /// An http scope (GET /, HTTP/1.1) advertising `fullflush` and `http.response.early_hint`.
    pub fn http() -> Scope {
        let mut s = HttpScope::new(Method::GET, "/");
        s.extensions.fullflush = true;
        s.extensions.early_hint = true;
        Scope::Http(s)
    }

    /// A websocket scope offering `chat.v1` and `chat.v2`, advertising the denial extension.
    pub fn websocket() -> Scope {
        let mut s = HttpScope::new(Method::GET, "/ws");
        s.subprotocols = vec!["chat.v1".into(), "chat.v2".into()];
        s.extensions
            .other
            .insert("websocket.http.response".into(), serde_json::json!({}));
        Scope::Websocket(s)
    }

    /// An sse scope.
    pub fn sse() -> Scope {
        Scope::Sse(HttpScope::new(Method::GET, "/events"))
    }

    /// A lifespan scope.
    pub fn lifespan() -> Scope {
        Scope::Lifespan(LifespanScope::new(State::shared()))
    }

    /// A body piece (`ResponseBody` cannot be built with a struct expression out of `pagi`).
    pub fn piece(bytes: &'static str, file: Option<&str>, more: bool) -> pagi::ResponseBody {
        let mut b = pagi::ResponseBody::default();
        b.bytes = pagi::Bytes::from_static(bytes.as_bytes());
        b.file = file.map(Into::into);
        b.more = more;
        b
    }

    /// Feeds `events` to a checker for `scope`; with `ret`, then returns (`Ok` when true).
    pub fn run(scope: &Scope, events: Vec<Ev>, ret: Option<bool>) -> Vec<Violation> {
        let mut c = Checker::new(scope);
        let mut out = Vec::new();
        for e in events {
            out.extend(match e {
                Ev::R(e) => c.receive(&e),
                Ev::S(e) => c.send(&e),
                Ev::Refused(e) => c.sent(Sent::of(&e), true),
            });
        }
        if let Some(ok) = ret {
            out.extend(c.returned(ok));
        }
        out
    }

    /// Asserts that `found` is exactly one violation of `rule`, whose message contains every
    /// one of `parts`.
    #[track_caller]
    pub fn only(found: &[Violation], rule: &str, parts: &[&str]) {
        assert_eq!(found.len(), 1, "expected only {rule}, found {found:#?}");
        let v = &found[0];
        assert_eq!(v.rule, rule, "{v:#?}");
        assert!(v.info().is_some(), "{v:?} is not in the catalogue");
        for p in parts {
            assert!(v.message.contains(p), "{:?} lacks {p:?}", v.message);
        }
    }

    /// Asserts that nothing was found.
    #[track_caller]
    pub fn clean(found: &[Violation]) {
        assert!(found.is_empty(), "expected no violation, found {found:#?}");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use pagi::{Headers, Message};

    #[test]
    fn event_of_another_scope_type() {
        let found = run(
            &http(),
            vec![Ev::S(SendEvent::WebsocketSend(Message::Text("x".into())))],
            None,
        );
        only(
            &found,
            "wrong-scope",
            &[
                "event #0 (sent websocket.send)",
                "does not belong to a http scope",
                "fails this send (unsupported)",
            ],
        );
        let found = run(&sse(), vec![Ev::S(SendEvent::body("x", false))], None);
        only(
            &found,
            "wrong-scope",
            &["http.response.body does not belong to a sse scope"],
        );
        let found = run(&sse(), vec![Ev::S(SendEvent::HttpFullflush)], None);
        only(&found, "wrong-scope", &["http.fullflush"]);
        let found = run(
            &lifespan(),
            vec![Ev::S(SendEvent::start(200, Headers::new()))],
            None,
        );
        only(&found, "wrong-scope", &["lifespan scope"]);
        let found = run(
            &websocket(),
            vec![Ev::S(SendEvent::LifespanStartupComplete)],
            None,
        );
        only(&found, "wrong-scope", &["lifespan.startup.complete"]);
    }

    #[test]
    fn a_wrong_scope_event_does_not_change_the_state() {
        let found = run(
            &http(),
            vec![
                Ev::S(SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                }),
                Ev::S(SendEvent::start(200, Headers::new())),
                Ev::S(SendEvent::body("", false)),
            ],
            Some(true),
        );
        only(&found, "wrong-scope", &["sse.start"]);
    }

    #[test]
    fn send_after_return() {
        let mut c = Checker::new(&http());
        clean(&c.send(&SendEvent::start(200, Headers::new())));
        clean(&c.send(&SendEvent::body("", false)));
        clean(&c.returned(true));
        only(
            &c.send(&SendEvent::body("late", false)),
            "send-after-return",
            &[
                "event #2 (sent http.response.body)",
                "after the app's call returned",
                "out of order",
            ],
        );
        let mut c = Checker::new(&websocket());
        clean(&c.returned(false));
        let found = c.send(&SendEvent::WebsocketSend(Message::Text("x".into())));
        only(&found, "send-after-return", &["closed the WebSocket"]);
        assert!(found[0].reaction().unwrap().fails_send());
    }

    #[test]
    fn receive_after_disconnect_is_reported_once() {
        let mut events = vec![Ev::R(ReceiveEvent::HttpRequest {
            body: "".into(),
            more: false,
        })];
        events.extend((0..25).map(|_| Ev::R(ReceiveEvent::HttpDisconnect)));
        let found = run(&http(), events, None);
        only(
            &found,
            "receive-after-disconnect",
            &[
                "event #10 (received http.disconnect)",
                "10 times (first at event #1)",
            ],
        );
        // A few repeats are fine.
        let events = (0..DISCONNECT_REPEAT_LIMIT - 1)
            .map(|_| {
                Ev::R(ReceiveEvent::SseDisconnect {
                    reason: pagi::DisconnectReason::ClientClosed,
                })
            })
            .collect();
        clean(&run(&sse(), events, Some(true)));
        let events = (0..DISCONNECT_REPEAT_LIMIT)
            .map(|_| {
                Ev::R(ReceiveEvent::WebsocketDisconnect {
                    code: 1006,
                    reason: "client_closed".into(),
                })
            })
            .collect();
        only(
            &run(&websocket(), events, None),
            "receive-after-disconnect",
            &["websocket.disconnect"],
        );
    }

    #[test]
    fn a_failed_call_is_not_checked_for_completeness() {
        clean(&run(&http(), vec![], Some(false)));
        clean(&run(&sse(), vec![], Some(false)));
        clean(&run(
            &websocket(),
            vec![Ev::R(ReceiveEvent::WebsocketConnect)],
            Some(false),
        ));
    }

    #[test]
    fn unexplained_refusal_keeps_the_state() {
        // The server could not open the file: the response stays as it was, and the app may
        // send something else.
        let found = run(
            &http(),
            vec![
                Ev::S(SendEvent::start(200, Headers::new())),
                Ev::Refused(SendEvent::file("/nonexistent")),
                Ev::S(SendEvent::body("fallback", false)),
            ],
            Some(true),
        );
        clean(&found);
        // Refused because it broke a rule: reported once, the state stays, no cascade.
        let found = run(
            &http(),
            vec![
                Ev::Refused(SendEvent::start(99, Headers::new())),
                Ev::S(SendEvent::start(200, Headers::new())),
                Ev::S(SendEvent::body("", false)),
            ],
            Some(true),
        );
        only(&found, "status-range", &["status 99"]);
    }

    #[test]
    fn the_client_being_gone_excuses_an_incomplete_exchange() {
        let mut c = Checker::new(&http());
        c.client_gone();
        clean(&c.returned(true));
    }
}
