//! What the lint reports: [`Violation`]s, and the catalogue of [`Rule`]s they come from.

use std::fmt;

/// One broken rule, found in one call of the app.
///
/// `scope` and `rule` are stable identifiers (the pair is a key of [`RULES`]); `message` is for
/// people: it names the event (by its index in the call, counting received and sent events
/// alike from 0), what was wrong with it, the state the exchange was in, what the spec expects
/// there, and how a conforming server reacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The scope type: `http`, `websocket`, `sse` or `lifespan`.
    pub scope: &'static str,
    /// The rule's stable id, such as `body-before-start`.
    pub rule: &'static str,
    /// What happened, in which state, and what the spec expects.
    pub message: String,
}

impl Violation {
    /// The catalogue entry of this violation's rule.
    pub fn info(&self) -> Option<&'static Rule> {
        rule(self.scope, self.rule)
    }

    /// How a conforming server reacts to this violation (`None` only for a rule missing from
    /// the catalogue, which the lint itself never reports).
    pub fn reaction(&self) -> Option<Reaction> {
        self.info().map(|r| r.reaction)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.scope, self.rule, self.message)
    }
}

/// How a server that follows the spec reacts to a broken rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reaction {
    /// The `send` fails as malformed ([`pagi::Error::is_invalid`]).
    Invalid,
    /// The `send` fails as not allowed in the current state
    /// ([`pagi::Error::is_out_of_order`]).
    OutOfOrder,
    /// The `send` fails because the event does not belong to the scope or needs an extension
    /// that is not advertised ([`pagi::Error::is_unsupported`]).
    Unsupported,
    /// No `send` fails: the server drops a field, ignores the event, treats it as a no-op, or
    /// repairs the outcome (a 500, a cut-off response). The message says which.
    Tolerated,
}

impl Reaction {
    /// Whether the server fails the `send` of the offending event.
    pub fn fails_send(self) -> bool {
        !matches!(self, Reaction::Tolerated)
    }

    /// The end of a violation message: what the server does.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Reaction::Invalid => "; the server fails this send (invalid)",
            Reaction::OutOfOrder => "; the server fails this send (out of order)",
            Reaction::Unsupported => "; the server fails this send (unsupported)",
            Reaction::Tolerated => "",
        }
    }
}

/// One rule of the catalogue: a scope type, a stable id, the server's reaction and a summary of
/// the spec's requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The scope type the rule applies to.
    pub scope: &'static str,
    /// The stable id (the same id may exist for several scope types).
    pub id: &'static str,
    /// What a conforming server does.
    pub reaction: Reaction,
    /// The requirement, in one sentence.
    pub summary: &'static str,
}

/// The catalogue entry for `id` in scopes of type `scope`.
pub fn rule(scope: &str, id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.scope == scope && r.id == id)
}

const fn r(
    scope: &'static str,
    id: &'static str,
    reaction: Reaction,
    summary: &'static str,
) -> Rule {
    Rule {
        scope,
        id,
        reaction,
        summary,
    }
}

use Reaction::{Invalid, OutOfOrder, Tolerated, Unsupported};

/// Every rule the lint checks, by scope type.
pub static RULES: &[Rule] = &[
    // http
    r("http", "wrong-scope", Unsupported, "Only http.response.start, http.response.body, http.response.trailers, http.fullflush and http.response.early_hint may be sent in an http scope."),
    r("http", "extension-not-advertised", Unsupported, "http.fullflush needs the fullflush extension in scope.extensions, http.response.early_hint the http.response.early_hint extension."),
    r("http", "status-range", Invalid, "The status of http.response.start is in 200..=999; 1xx responses belong to the server."),
    r("http", "header-name", Invalid, "Every response and trailer field name is an RFC 9110 token (any case)."),
    r("http", "header-value", Invalid, "No response or trailer field value contains CR, LF or NUL."),
    r("http", "content-length-value", Invalid, "Every content-length value is one or more ASCII digits."),
    r("http", "content-length-conflict", Invalid, "Repeated content-length fields agree."),
    r("http", "dropped-header", Tolerated, "transfer-encoding, and connection options other than close, belong to the server, which drops them."),
    r("http", "duplicate-start", OutOfOrder, "A response has exactly one http.response.start."),
    r("http", "body-before-start", OutOfOrder, "http.response.body comes after http.response.start."),
    r("http", "body-after-complete", OutOfOrder, "No http.response.body follows the final piece (more: 0, or a file)."),
    r("http", "body-and-file", Invalid, "An http.response.body carries body or file, not both."),
    r("http", "file-not-absolute", Invalid, "The file of an http.response.body is an absolute path."),
    r("http", "content-length-mismatch", Invalid, "A body framed by the app's content-length is exactly that long (HEAD, 204, 304 and trailers on HTTP/1.1 are not framed by it)."),
    r("http", "trailers-not-announced", OutOfOrder, "http.response.trailers is sent only when http.response.start said trailers: 1."),
    r("http", "trailers-before-body-end", OutOfOrder, "http.response.trailers comes after the final body piece."),
    r("http", "duplicate-trailers", OutOfOrder, "http.response.trailers is sent at most once."),
    r("http", "fullflush-before-start", OutOfOrder, "http.fullflush comes after http.response.start."),
    r("http", "early-hint-after-start", OutOfOrder, "http.response.early_hint (103 Early Hints) comes before http.response.start."),
    r("http", "early-hint-field", Invalid, "An http.response.early_hint carries no connection-specific or framing field (connection, keep-alive, proxy-connection, transfer-encoding, upgrade, te, content-length)."),
    r("http", "missing-response", Tolerated, "A call that returns Ok has sent http.response.start, unless the client is gone (otherwise the server answers 500)."),
    r("http", "missing-final-body", Tolerated, "A call that returns Ok has ended the body (more: 0 or a file), unless the client is gone (otherwise the response is cut off)."),
    r("http", "missing-trailers", Tolerated, "An app that announced trailers sends http.response.trailers (otherwise the response stays incomplete)."),
    r("http", "receive-after-disconnect", Tolerated, "An app stops working on the request once it has received http.disconnect; it does not keep calling receive."),
    r("http", "send-after-return", OutOfOrder, "No event is sent through a Sender kept after the app's call returned."),
    // websocket
    r("websocket", "wrong-scope", Unsupported, "Only websocket.* events may be sent in a websocket scope."),
    r("websocket", "extension-not-advertised", Unsupported, "websocket.http.response.* need the websocket.http.response extension in scope.extensions."),
    r("websocket", "send-before-accept", OutOfOrder, "websocket.send comes after websocket.accept (never before it or during a denial)."),
    r("websocket", "accept-out-of-order", OutOfOrder, "websocket.accept is the first and only answer to websocket.connect."),
    r("websocket", "subprotocol-not-offered", Invalid, "The subprotocol of websocket.accept is one of the scope's subprotocols."),
    r("websocket", "header-name", Invalid, "Every field name of websocket.accept and websocket.http.response.start is an RFC 9110 token."),
    r("websocket", "header-value", Invalid, "No field value of websocket.accept or websocket.http.response.start contains CR, LF or NUL."),
    r("websocket", "dropped-header", Tolerated, "The handshake fields (upgrade, connection, sec-websocket-*, content-length, transfer-encoding) belong to the server, which drops them."),
    r("websocket", "status-range", Invalid, "The status of websocket.http.response.start is in 200..=999."),
    r("websocket", "duplicate-start", OutOfOrder, "A denial has exactly one websocket.http.response.start."),
    r("websocket", "body-before-start", OutOfOrder, "websocket.http.response.body comes after websocket.http.response.start."),
    r("websocket", "file-not-supported", Unsupported, "websocket.http.response.body takes bytes, not a file."),
    r("websocket", "denial-after-accept", Tolerated, "websocket.http.response.* are sent only before the accept (after it the server ignores them)."),
    r("websocket", "close-during-denial", OutOfOrder, "websocket.close is not sent while a denial response is under way."),
    r("websocket", "close-code", Invalid, "After the accept, the websocket.close code is one an endpoint may send: 1000-1003, 1007-1014 or 3000-4999."),
    r("websocket", "close-reason-too-long", Tolerated, "A websocket.close reason fits the 123 bytes of a Close frame (the server cuts it)."),
    r("websocket", "send-after-close", Tolerated, "No websocket.send follows the app's own websocket.close (the server drops it)."),
    r("websocket", "event-after-close", Tolerated, "Nothing is sent after the app refused the connection (403 or a complete denial): every send is a no-op."),
    r("websocket", "missing-answer", Tolerated, "A call that returns Ok has answered websocket.connect, unless the client is gone (otherwise the server answers 500)."),
    r("websocket", "missing-final-body", Tolerated, "A denial response ends with a websocket.http.response.body with more: 0."),
    r("websocket", "receive-after-disconnect", Tolerated, "An app returns once it has received websocket.disconnect; it does not keep calling receive."),
    r("websocket", "send-after-return", OutOfOrder, "No event is sent through a Sender kept after the app's call returned."),
    // sse
    r("sse", "wrong-scope", Unsupported, "Only sse.* events may be sent in an sse scope."),
    r("sse", "status-range", Invalid, "The status of sse.start and sse.http.response.start is in 200..=999."),
    r("sse", "header-name", Invalid, "Every response field name is an RFC 9110 token."),
    r("sse", "header-value", Invalid, "No response field value contains CR, LF or NUL."),
    r("sse", "content-length-value", Invalid, "Every content-length value is one or more ASCII digits."),
    r("sse", "content-length-conflict", Invalid, "Repeated content-length fields agree."),
    r("sse", "dropped-header", Tolerated, "transfer-encoding, and connection options other than close, belong to the server, which drops them."),
    r("sse", "content-length-on-stream", Tolerated, "An app should not give sse.start a content-length: it would frame the stream."),
    r("sse", "duplicate-start", OutOfOrder, "A stream has one start: one sse.start, or one sse.http.response.start."),
    r("sse", "mixed-response", OutOfOrder, "A stream is either started (sse.start, then sse.send/comment/keepalive) or declined (sse.http.response.*), never both."),
    r("sse", "event-before-start", OutOfOrder, "sse.send and sse.comment come after sse.start."),
    r("sse", "body-before-start", OutOfOrder, "sse.http.response.body comes after sse.http.response.start."),
    r("sse", "body-after-complete", OutOfOrder, "No sse.http.response.body follows the final piece."),
    r("sse", "body-and-file", Invalid, "An sse.http.response.body carries body or file, not both."),
    r("sse", "file-not-absolute", Invalid, "The file of an sse.http.response.body is an absolute path."),
    r("sse", "content-length-mismatch", Invalid, "A declining body framed by the app's content-length is exactly that long."),
    r("sse", "sse-event-field", Invalid, "The event of sse.send contains no CR or LF."),
    r("sse", "sse-id-field", Invalid, "The id of sse.send contains no CR, LF or NUL."),
    r("sse", "event-after-close", OutOfOrder, "Nothing but another sse.close follows sse.close."),
    r("sse", "missing-response", Tolerated, "A call that returns Ok has sent sse.start or sse.http.response.start, unless the client is gone (otherwise the server answers 500)."),
    r("sse", "missing-final-body", Tolerated, "A declining response ends with a final sse.http.response.body (or sse.close)."),
    r("sse", "receive-after-disconnect", Tolerated, "An app stops once it has received sse.disconnect; it does not keep calling receive."),
    r("sse", "send-after-return", OutOfOrder, "No event is sent through a Sender kept after the app's call returned."),
    // lifespan
    r("lifespan", "wrong-scope", Unsupported, "Only lifespan.* answers may be sent in a lifespan scope."),
    r("lifespan", "answer-without-event", OutOfOrder, "lifespan.startup.* answers a received lifespan.startup, lifespan.shutdown.* a received lifespan.shutdown."),
    r("lifespan", "duplicate-answer", OutOfOrder, "Each lifespan event gets exactly one answer (.complete or .failed)."),
    r("lifespan", "missing-answer", Tolerated, "An app that received lifespan.shutdown answers it before returning Ok."),
    r("lifespan", "send-after-return", OutOfOrder, "No event is sent through a Sender kept after the app's call returned."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_unique_keys_and_text() {
        for (i, a) in RULES.iter().enumerate() {
            assert!(!a.summary.is_empty());
            assert!(
                RULES[i + 1..]
                    .iter()
                    .all(|b| (a.scope, a.id) != (b.scope, b.id)),
                "{}/{} listed twice",
                a.scope,
                a.id
            );
        }
    }

    #[test]
    fn lookup_and_display() {
        let v = Violation {
            scope: "http",
            rule: "body-before-start",
            message: "event #0 ...".into(),
        };
        assert_eq!(v.reaction(), Some(Reaction::OutOfOrder));
        assert!(v.reaction().unwrap().fails_send());
        assert_eq!(v.to_string(), "http [body-before-start]: event #0 ...");
        assert_eq!(
            rule("websocket", "send-after-return").unwrap().reaction,
            OutOfOrder
        );
        assert!(rule("lifespan", "body-before-start").is_none());
    }
}
