//! The `http` scope: one response (see [`Response`]), `http.fullflush` and
//! `http.response.early_hint`.

use super::fields::{Facts, Sent};
use super::response::{Names, Response};
use super::{Info, Report};

const NAMES: Names = Names {
    start: "http.response.start",
    body: "http.response.body",
};

#[derive(Clone, Debug, Default)]
pub(crate) struct Http {
    resp: Response,
}

impl Http {
    pub fn send(&mut self, sent: &Sent, info: &Info, r: &mut Report<'_>) {
        match (sent.kind, &sent.facts) {
            ("http.response.start", _) => self.resp.start(NAMES, sent, info, r),
            ("http.response.body", Facts::Body(piece)) => self.resp.body(NAMES, piece, r),
            ("http.response.trailers", Facts::Trailers(fields)) => {
                self.resp.trailers(NAMES, fields, r)
            }
            ("http.response.early_hint", Facts::EarlyHint(fields)) => {
                if !info.early_hint {
                    r.add(
                        "extension-not-advertised",
                        "http.response.early_hint, but the scope does not advertise the http.response.early_hint extension; an app checks scope.extensions before using an extension",
                    );
                    return;
                }
                if self.resp.started() {
                    r.add(
                        "early-hint-after-start",
                        format!(
                            "http.response.early_hint after http.response.start (event #{}); a 103 Early Hints can only precede the final response",
                            self.resp.start_index()
                        ),
                    );
                }
                r.fields(fields);
            }
            ("http.fullflush", _) => {
                if !info.fullflush {
                    r.add(
                        "extension-not-advertised",
                        "http.fullflush, but the scope does not advertise the fullflush extension; an app checks scope.extensions before using an extension",
                    );
                } else if !self.resp.started() {
                    r.add(
                        "fullflush-before-start",
                        "http.fullflush before any http.response.start; it is valid only once the response has started",
                    );
                }
            }
            _ => {}
        }
    }

    pub fn returned(&self, gone: bool, r: &mut Report<'_>) {
        if !gone {
            self.resp.returned(NAMES, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use pagi::{Bytes, Headers, HttpScope, HttpVersion, Method, ReceiveEvent, Scope, SendEvent};

    fn start() -> Ev {
        Ev::S(SendEvent::start(200, Headers::new()))
    }

    fn body(b: &'static str, more: bool) -> Ev {
        Ev::S(SendEvent::body(b, more))
    }

    fn start_with(headers: Headers) -> Ev {
        Ev::S(SendEvent::start(200, headers))
    }

    fn start_trailers() -> Ev {
        Ev::S(SendEvent::HttpResponseStart {
            status: 200,
            headers: Headers::new(),
            trailers: true,
        })
    }

    fn trailers() -> Ev {
        Ev::S(SendEvent::trailers(Headers::new().with("x-sum", "1")))
    }

    #[test]
    fn correct_exchanges() {
        let request = || {
            Ev::R(ReceiveEvent::HttpRequest {
                body: Bytes::from_static(b"name=PAGI"),
                more: false,
            })
        };
        clean(&run(
            &http(),
            vec![
                request(),
                start_with(
                    Headers::new()
                        .with("Content-Type", "text/plain")
                        .with("content-length", "11")
                        .with("connection", "close"),
                ),
                body("Hello, ", true),
                Ev::S(SendEvent::HttpFullflush),
                body("PAGI", true),
                body("", false),
                Ev::S(SendEvent::HttpFullflush),
                Ev::R(ReceiveEvent::HttpDisconnect),
            ],
            Some(true),
        ));
        // Trailers, a file body, and a HEAD response with the GET's length.
        clean(&run(
            &http(),
            vec![
                start_trailers(),
                body("part", true),
                body("", false),
                trailers(),
            ],
            Some(true),
        ));
        clean(&run(
            &http(),
            vec![
                start(),
                body("head ", true),
                Ev::S(SendEvent::file("/srv/x.bin")),
            ],
            Some(true),
        ));
        let head = Scope::Http(HttpScope::new(Method::HEAD, "/"));
        clean(&run(
            &head,
            vec![
                start_with(Headers::new().with("content-length", "1234")),
                body("", false),
            ],
            Some(true),
        ));
    }

    #[test]
    fn body_before_start() {
        only(
            &run(&http(), vec![body("x", false)], None),
            "body-before-start",
            &[
                "event #0 (sent http.response.body)",
                "before http.response.start",
                "no http.response.start has been accepted yet",
                "out of order",
            ],
        );
    }

    #[test]
    fn duplicate_start() {
        only(
            &run(
                &http(),
                vec![start(), Ev::S(SendEvent::start(404, Headers::new()))],
                None,
            ),
            "duplicate-start",
            &[
                "event #1 (sent http.response.start)",
                "a second http.response.start (status 404)",
                "the response started at event #0",
            ],
        );
    }

    #[test]
    fn body_after_complete() {
        only(
            &run(
                &http(),
                vec![start(), body("a", false), body("b", false)],
                None,
            ),
            "body-after-complete",
            &["event #2", "the final body piece (more: 0) was event #1"],
        );
        only(
            &run(
                &http(),
                vec![start(), Ev::S(SendEvent::file("/a")), body("b", false)],
                None,
            ),
            "body-after-complete",
            &["event #1 sent a file, which is always the last piece"],
        );
        only(
            &run(
                &http(),
                vec![start_trailers(), body("", false), body("x", true)],
                None,
            ),
            "body-after-complete",
            &["the trailers announced at event #0 are due"],
        );
    }

    #[test]
    fn status_out_of_range() {
        only(
            &run(
                &http(),
                vec![Ev::S(SendEvent::start(101, Headers::new()))],
                None,
            ),
            "status-range",
            &[
                "status 101, outside 200..=999",
                "1xx responses are the server's",
                "(invalid)",
            ],
        );
        only(
            &run(
                &http(),
                vec![Ev::S(SendEvent::start(1000, Headers::new()))],
                None,
            ),
            "status-range",
            &["status 1000"],
        );
    }

    #[test]
    fn bad_header_fields() {
        only(
            &run(
                &http(),
                vec![start_with(
                    Headers::new().with("x-ok", "1").with("Bad Name", "1"),
                )],
                None,
            ),
            "header-name",
            &[
                r#"header field 1 has the name "Bad Name", which is not an RFC 9110 token"#,
                "(invalid)",
            ],
        );
        for value in ["a\rb", "a\nb", "a\0b"] {
            only(
                &run(
                    &http(),
                    vec![start_with(Headers::new().with("x-a", value))],
                    None,
                ),
                "header-value",
                &[r#"header field 0 ("x-a")"#, "contains CR, LF or NUL"],
            );
        }
        // Uppercase names are tokens: written as given, not a violation.
        clean(&run(
            &http(),
            vec![
                start_with(Headers::new().with("X-Upper", "1")),
                body("", false),
            ],
            Some(true),
        ));
    }

    #[test]
    fn content_length_fields() {
        only(
            &run(
                &http(),
                vec![start_with(Headers::new().with("content-length", "-1"))],
                None,
            ),
            "content-length-value",
            &[r#"has the value "-1", which is not one or more digits"#],
        );
        only(
            &run(
                &http(),
                vec![start_with(
                    Headers::new()
                        .with("content-length", "2")
                        .with("Content-Length", "3"),
                )],
                None,
            ),
            "content-length-conflict",
            &["field 1 (content-length: 3) disagrees with field 0 (content-length: 2)"],
        );
        // Duplicates that agree are allowed.
        clean(&run(
            &http(),
            vec![
                start_with(
                    Headers::new()
                        .with("content-length", "2")
                        .with("content-length", "2"),
                ),
                body("ok", false),
            ],
            Some(true),
        ));
    }

    #[test]
    fn fields_the_server_drops() {
        let found = run(
            &http(),
            vec![
                start_with(Headers::new().with("Transfer-Encoding", "chunked")),
                body("", false),
            ],
            Some(true),
        );
        only(
            &found,
            "dropped-header",
            &[
                r#""Transfer-Encoding""#,
                "the server alone chooses the framing",
            ],
        );
        assert!(!found[0].reaction().unwrap().fails_send());
        only(
            &run(
                &http(),
                vec![
                    start_with(Headers::new().with("connection", "keep-alive")),
                    body("", false),
                ],
                Some(true),
            ),
            "dropped-header",
            &[
                r#"the option(s) "keep-alive""#,
                r#"only the token "close" has an effect"#,
            ],
        );
    }

    #[test]
    fn content_length_mismatch() {
        let cl = |n: &'static str| start_with(Headers::new().with("content-length", n));
        only(
            &run(
                &http(),
                vec![cl("3"), body("ab", true), body("cd", true)],
                None,
            ),
            "content-length-mismatch",
            &[
                "event #2",
                "carries 2 bytes after 2",
                "reaches 4 bytes, more than its content-length of 3",
                "only 1 of them are sent",
            ],
        );
        // The overflow completes the response.
        let found = run(&http(), vec![cl("1"), body("ab", true)], Some(true));
        only(
            &found,
            "content-length-mismatch",
            &["more than its content-length of 1"],
        );
        only(
            &run(&http(), vec![cl("5"), body("abc", false)], Some(true)),
            "content-length-mismatch",
            &[
                "ends the body at 3 bytes, short of its content-length of 5",
                "the client sees a short body",
            ],
        );
        // Not framed by the length: HEAD, 204, 304, trailers on HTTP/1.1. A file: unknown.
        let head = Scope::Http(HttpScope::new(Method::HEAD, "/"));
        clean(&run(&head, vec![cl("5"), body("", false)], Some(true)));
        for status in [204, 304] {
            let s = SendEvent::start(status, Headers::new().with("content-length", "5"));
            clean(&run(&http(), vec![Ev::S(s), body("", false)], Some(true)));
        }
        let announce = SendEvent::HttpResponseStart {
            status: 200,
            headers: Headers::new().with("content-length", "5"),
            trailers: true,
        };
        clean(&run(
            &http(),
            vec![Ev::S(announce.clone()), body("ab", false), trailers()],
            Some(true),
        ));
        let mut h10 = HttpScope::new(Method::GET, "/");
        h10.http_version = HttpVersion::Http10;
        only(
            &run(
                &Scope::Http(h10),
                vec![Ev::S(announce), body("ab", false)],
                None,
            ),
            "content-length-mismatch",
            &["short of its content-length of 5"],
        );
        clean(&run(
            &http(),
            vec![cl("5"), Ev::S(SendEvent::file("/f"))],
            Some(true),
        ));
    }

    #[test]
    fn body_and_file() {
        let both = piece("xy", Some("/f"), false);
        only(
            &run(
                &http(),
                vec![start(), Ev::S(SendEvent::HttpResponseBody(both))],
                None,
            ),
            "body-and-file",
            &["carries both 2 body bytes and a file"],
        );
    }

    #[test]
    fn relative_file() {
        only(
            &run(
                &http(),
                vec![start(), Ev::S(SendEvent::file("static/logo.png"))],
                None,
            ),
            "file-not-absolute",
            &[r#"names the file "static/logo.png", which is not an absolute path"#],
        );
    }

    #[test]
    fn trailers_rules() {
        only(
            &run(&http(), vec![start(), body("", false), trailers()], None),
            "trailers-not-announced",
            &[
                "event #2 (sent http.response.trailers)",
                "the http.response.start at event #0 said trailers: 0",
            ],
        );
        only(
            &run(&http(), vec![trailers()], None),
            "trailers-not-announced",
            &["no http.response.start has been accepted yet"],
        );
        only(
            &run(
                &http(),
                vec![start_trailers(), body("a", true), trailers()],
                None,
            ),
            "trailers-before-body-end",
            &["before the final body piece", "event #1 had more: 1"],
        );
        only(
            &run(
                &http(),
                vec![start_trailers(), body("", false), trailers(), trailers()],
                None,
            ),
            "duplicate-trailers",
            &["event #3", "its trailers were event #2"],
        );
        only(
            &run(
                &http(),
                vec![
                    start_trailers(),
                    body("", false),
                    Ev::S(SendEvent::trailers(Headers::new().with("a b", "1"))),
                ],
                None,
            ),
            "header-name",
            &["trailer field 0"],
        );
    }

    #[test]
    fn fullflush_rules() {
        only(
            &run(&http(), vec![Ev::S(SendEvent::HttpFullflush)], None),
            "fullflush-before-start",
            &["before any http.response.start"],
        );
        let plain = Scope::Http(HttpScope::new(Method::GET, "/"));
        only(
            &run(&plain, vec![start(), Ev::S(SendEvent::HttpFullflush)], None),
            "extension-not-advertised",
            &[
                "does not advertise the fullflush extension",
                "(unsupported)",
            ],
        );
    }

    fn hint(headers: Headers) -> Ev {
        Ev::S(SendEvent::early_hint(headers))
    }

    fn link() -> Headers {
        Headers::new().with("link", "</style.css>; rel=preload; as=style")
    }

    #[test]
    fn early_hint_rules() {
        // Zero or more before the start: clean, and the response goes on as usual.
        clean(&run(
            &http(),
            vec![
                hint(link()),
                hint(Headers::new()),
                start(),
                body("ok", false),
            ],
            Some(true),
        ));
        // After the start (even a held one) it fails as out of order.
        only(
            &run(
                &http(),
                vec![start(), hint(link()), body("ok", false)],
                Some(true),
            ),
            "early-hint-after-start",
            &[
                "event #1",
                "after http.response.start (event #0)",
                "(out of order)",
            ],
        );
        only(
            &run(
                &http(),
                vec![start(), body("ok", false), hint(link())],
                None,
            ),
            "early-hint-after-start",
            &["event #2"],
        );
        // Connection-specific and framing fields are refused; so are the usual bad fields.
        only(
            &run(
                &http(),
                vec![hint(link().with("Transfer-Encoding", "chunked"))],
                None,
            ),
            "early-hint-field",
            &["header field 1 (\"Transfer-Encoding\")", "(invalid)"],
        );
        only(
            &run(&http(), vec![hint(Headers::new().with("li nk", "x"))], None),
            "header-name",
            &["header field 0"],
        );
        // Not advertised: unsupported, and nothing else is said about the event.
        let plain = Scope::Http(HttpScope::new(Method::GET, "/"));
        only(
            &run(
                &plain,
                vec![hint(Headers::new().with("connection", "close"))],
                None,
            ),
            "extension-not-advertised",
            &[
                "does not advertise the http.response.early_hint extension",
                "(unsupported)",
            ],
        );
        // In an sse scope it is another scope's event.
        let mut sse = HttpScope::new(Method::GET, "/");
        sse.extensions.early_hint = true;
        only(
            &run(&Scope::Sse(sse), vec![hint(link())], None),
            "wrong-scope",
            &["http.response.early_hint does not belong to a sse scope"],
        );
    }

    #[test]
    fn missing_response_and_body() {
        only(
            &run(&http(), vec![], Some(true)),
            "missing-response",
            &[
                "when the call returned Ok after 0 events",
                "500 Internal Server Error",
            ],
        );
        only(
            &run(&http(), vec![start()], Some(true)),
            "missing-final-body",
            &["the response started at event #0 but no http.response.body followed"],
        );
        only(
            &run(
                &http(),
                vec![start(), body("a", true), body("b", true)],
                Some(true),
            ),
            "missing-final-body",
            &[
                "after 3 events",
                "the last http.response.body (event #2) had more: 1",
            ],
        );
        only(
            &run(&http(), vec![start_trailers(), body("", false)], Some(true)),
            "missing-trailers",
            &["said trailers: 1 and the body ended at event #1"],
        );
    }

    #[test]
    fn a_client_that_left_excuses_the_missing_response() {
        let gone = || Ev::R(ReceiveEvent::HttpDisconnect);
        clean(&run(&http(), vec![gone()], Some(true)));
        clean(&run(
            &http(),
            vec![start(), body("a", true), gone()],
            Some(true),
        ));
    }
}
