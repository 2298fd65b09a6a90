//! Access log formats: parsing a format spec, and rendering one [`Record`] as one line. Pure:
//! no I/O and no clock.

use bytes::Bytes;
use pagi::{HttpVersion, Method};
use std::fmt::Write;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use super::time::{push_clf, push_rfc3339};

/// `clf` and `common`: the NCSA Common Log Format.
pub(crate) const COMMON: &str = r#"%h %l %u %t "%r" %s %b"#;
/// `combined`: the Common Log Format plus referer and user agent.
pub(crate) const COMBINED: &str = r#"%h %l %u %t "%r" %s %b "%f" "%a""#;
/// `tiny`: method, target, status, bytes and whole milliseconds.
pub(crate) const TINY: &str = "%m %U%q %s %b %Mms";

/// A log line format: one of the presets, or a custom string of `%` atoms.
///
/// Parse one with [`Format::parse`] (or [`str::parse`]). See the [module
/// documentation](crate::access_log) for the presets and the atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    body: Body,
    /// Request header names (lowercase) whose values a record must carry, in slot order.
    request_headers: Vec<String>,
    /// Response header names (lowercase), in slot order.
    response_headers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Template(Vec<Piece>),
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Atom(Atom),
    /// A slot of `Format::request_headers`.
    RequestHeader(usize),
    /// A slot of `Format::response_headers`.
    ResponseHeader(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Atom {
    Host,
    Dash,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Scheme,
    Status,
    BytesOrDash,
    Bytes,
    WholeSeconds,
    Seconds3,
    Seconds6,
    Micros,
    Millis,
}

impl Atom {
    fn from_letter(c: char) -> Option<Atom> {
        Some(match c {
            'h' => Atom::Host,
            'l' | 'u' => Atom::Dash,
            't' => Atom::Time,
            'r' => Atom::RequestLine,
            'm' => Atom::Method,
            'U' => Atom::Path,
            'q' => Atom::Query,
            'H' => Atom::Protocol,
            'S' => Atom::Scheme,
            's' => Atom::Status,
            'b' => Atom::BytesOrDash,
            'B' => Atom::Bytes,
            'T' => Atom::WholeSeconds,
            'd' => Atom::Seconds3,
            'L' => Atom::Seconds6,
            'D' => Atom::Micros,
            'M' => Atom::Millis,
            _ => return None,
        })
    }
}

impl Format {
    /// Parses a preset name (`clf`, `common`, `combined`, `tiny`, `json`) or a custom format
    /// string.
    ///
    /// A custom string fails on an unknown atom, a `%` at the end, an unterminated or empty
    /// `%{name}`, a `%{name}` not followed by `i` or `o`, a header name that is not a token, a
    /// line break, or when it has no atom at all (a mistyped preset name, say). The error says
    /// what and where.
    ///
    /// ```
    /// use pagi_middleware::access_log::Format;
    ///
    /// assert_eq!(Format::parse("clf"), Format::parse(r#"%h %l %u %t "%r" %s %b"#));
    /// assert!(Format::parse("%h %{x-request-id}i %D").is_ok());
    /// assert!(Format::parse("%z").unwrap_err().contains("%z"));
    /// ```
    pub fn parse(spec: &str) -> Result<Format, String> {
        match spec {
            "clf" | "common" => Format::template(COMMON),
            "combined" => Format::template(COMBINED),
            "tiny" => Format::template(TINY),
            "json" => Ok(Format {
                body: Body::Json,
                request_headers: vec!["referer".into(), "user-agent".into()],
                response_headers: Vec::new(),
            }),
            custom => Format::template(custom),
        }
    }

    fn template(spec: &str) -> Result<Format, String> {
        if spec.is_empty() {
            return Err("the access log format is empty".into());
        }
        if spec.contains(['\r', '\n']) {
            return Err("the access log format must not contain a line break".into());
        }
        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = spec.char_indices();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let piece = match chars.next() {
                None => return Err(format!("a lone % ends the access log format (at {at})")),
                Some((_, '%')) => {
                    literal.push('%');
                    continue;
                }
                Some((open, '{')) => {
                    let Some(len) = spec[open + 1..].find('}') else {
                        return Err(format!("%{{ at {at} is not closed with }}"));
                    };
                    let name = &spec[open + 1..open + 1 + len];
                    // Skip the name and the `}`, then read the letter that says which header.
                    chars.nth(name.chars().count());
                    let which = chars.next().map(|(_, c)| c);
                    header_piece(at, name, which, &mut request_headers, &mut response_headers)?
                }
                Some((_, 'f')) => Piece::RequestHeader(slot(&mut request_headers, "referer")),
                Some((_, 'a')) => Piece::RequestHeader(slot(&mut request_headers, "user-agent")),
                Some((_, c)) => match Atom::from_letter(c) {
                    Some(atom) => Piece::Atom(atom),
                    None => return Err(format!("unknown access log atom %{c} (at {at})")),
                },
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if pieces.iter().all(|p| matches!(p, Piece::Literal(_))) {
            // Most likely a mistyped preset name: a line without a single value helps nobody.
            return Err(format!(
                "access log format {spec:?} is neither a preset (clf, common, combined, tiny, \
                 json) nor a format with % atoms"
            ));
        }
        Ok(Format {
            body: Body::Template(pieces),
            request_headers,
            response_headers,
        })
    }

    /// Request header names (lowercase) whose values go into [`Record::request_headers`].
    pub(crate) fn request_headers(&self) -> &[String] {
        &self.request_headers
    }

    /// Response header names (lowercase) whose values go into [`Record::response_headers`].
    pub(crate) fn response_headers(&self) -> &[String] {
        &self.response_headers
    }

    /// Renders `r` as one line, ending with `\n`.
    pub(crate) fn render(&self, r: &Record) -> String {
        let mut out = String::with_capacity(160);
        match &self.body {
            Body::Template(pieces) => {
                for p in pieces {
                    render_piece(&mut out, p, r);
                }
            }
            Body::Json => render_json(&mut out, r),
        }
        out.push('\n');
        out
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::parse(s)
    }
}

/// The index of `name` in `names`, added if missing.
fn slot(names: &mut Vec<String>, name: &str) -> usize {
    match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_owned());
            names.len() - 1
        }
    }
}

/// `%{name}i` or `%{name}o` (the `%` at byte `at`; `which` is the letter after the `}`).
fn header_piece(
    at: usize,
    name: &str,
    which: Option<char>,
    request_headers: &mut Vec<String>,
    response_headers: &mut Vec<String>,
) -> Result<Piece, String> {
    if name.is_empty() {
        return Err(format!("%{{}} at {at} has no header name"));
    }
    if !pagi::headers::is_token(name.as_bytes()) {
        return Err(format!("%{{{name}}} at {at}: not a header name"));
    }
    let lower = name.to_ascii_lowercase();
    match which {
        Some('i') => Ok(Piece::RequestHeader(slot(request_headers, &lower))),
        Some('o') => Ok(Piece::ResponseHeader(slot(response_headers, &lower))),
        Some(other) => Err(format!(
            "%{{{name}}}{other} at {at}: only %{{name}}i (request header) and %{{name}}o \
             (response header) are supported"
        )),
        None => Err(format!(
            "%{{{name}}} at {at} needs i (request header) or o (response header)"
        )),
    }
}

/// Who the peer is, as the log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    /// A TCP peer (the scope's `client`, possibly rewritten by a proxy-headers middleware).
    Ip(IpAddr),
    /// A peer on a Unix socket (no `client`, and a Unix `server`).
    Unix,
    /// No `client` on a TCP listener (a middleware removed it): `-`.
    Unknown,
}

/// What one line says about a request, WebSocket or SSE stream.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// The scope type: `http`, `websocket` or `sse`.
    pub kind: &'static str,
    pub client: Client,
    pub method: Method,
    pub scheme: &'static str,
    pub raw_path: Bytes,
    pub query: Bytes,
    pub version: HttpVersion,
    /// Values for `Format::request_headers`, slot by slot (`None`: absent).
    pub request_headers: Vec<Option<Bytes>>,
    /// Values for `Format::response_headers`, slot by slot (`None`: absent or no response).
    pub response_headers: Vec<Option<Bytes>>,
    /// The status of the accepted start; `None` when none was accepted.
    pub status: Option<u16>,
    pub bytes: u64,
    /// When the call began.
    pub start: SystemTime,
    pub duration: Duration,
}

impl Record {
    fn request_header(&self, slot: usize) -> Option<&Bytes> {
        self.request_headers.get(slot).and_then(Option::as_ref)
    }

    fn response_header(&self, slot: usize) -> Option<&Bytes> {
        self.response_headers.get(slot).and_then(Option::as_ref)
    }
}

/// The protocol as written in a request line: `HTTP/1.1`.
fn protocol(v: HttpVersion) -> &'static str {
    match v {
        HttpVersion::Http10 => "HTTP/1.0",
        HttpVersion::Http11 => "HTTP/1.1",
        HttpVersion::Http2 => "HTTP/2",
    }
}

fn render_piece(out: &mut String, p: &Piece, r: &Record) {
    match p {
        Piece::Literal(s) => out.push_str(s),
        Piece::RequestHeader(i) => push_or_dash(out, r.request_header(*i)),
        Piece::ResponseHeader(i) => push_or_dash(out, r.response_header(*i)),
        Piece::Atom(a) => render_atom(out, *a, r),
    }
}

fn push_or_dash(out: &mut String, v: Option<&Bytes>) {
    match v {
        Some(v) => push_escaped(out, v),
        None => out.push('-'),
    }
}

fn render_atom(out: &mut String, a: Atom, r: &Record) {
    let d = r.duration;
    // `write!` into a String cannot fail.
    let _ = match a {
        Atom::Host => match &r.client {
            Client::Ip(ip) => write!(out, "{ip}"),
            Client::Unix => out.write_str("unix"),
            Client::Unknown => out.write_str("-"),
        },
        Atom::Dash => out.write_str("-"),
        Atom::Time => {
            push_clf(out, r.start);
            Ok(())
        }
        Atom::RequestLine => {
            push_escaped(out, r.method.as_str().as_bytes());
            out.push(' ');
            push_escaped(out, &r.raw_path);
            if !r.query.is_empty() {
                out.push('?');
                push_escaped(out, &r.query);
            }
            out.push(' ');
            out.write_str(protocol(r.version))
        }
        Atom::Method => {
            push_escaped(out, r.method.as_str().as_bytes());
            Ok(())
        }
        Atom::Path => {
            push_escaped(out, &r.raw_path);
            Ok(())
        }
        Atom::Query => {
            if !r.query.is_empty() {
                out.push('?');
                push_escaped(out, &r.query);
            }
            Ok(())
        }
        Atom::Protocol => out.write_str(protocol(r.version)),
        Atom::Scheme => out.write_str(r.scheme),
        Atom::Status => match r.status {
            Some(s) => write!(out, "{s}"),
            None => out.write_str("-"),
        },
        Atom::BytesOrDash if r.bytes == 0 => out.write_str("-"),
        Atom::BytesOrDash | Atom::Bytes => write!(out, "{}", r.bytes),
        Atom::WholeSeconds => write!(out, "{}", d.as_secs()),
        Atom::Seconds3 => write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis()),
        Atom::Seconds6 => write!(out, "{}.{:06}", d.as_secs(), d.subsec_micros()),
        Atom::Micros => write!(out, "{}", d.as_micros()),
        Atom::Millis => write!(out, "{}", d.as_millis()),
    };
}

/// Appends `bytes` so that the line stays one line of printable ASCII that cannot be confused
/// with the format's own quoting: `"` as `\"`, `\` as `\\`, and every byte outside
/// `0x20..=0x7e` (control bytes, DEL, and all of `0x80..=0xff`) as `\xHH` with uppercase hex.
/// The result is unambiguous: the bytes can be recovered exactly.
pub(crate) fn push_escaped(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}

/// One JSON object per line, fields in a fixed order.
fn render_json(out: &mut String, r: &Record) {
    out.push_str("{\"time\":\"");
    push_rfc3339(out, r.start);
    out.push_str("\",\"type\":");
    push_json_str(out, r.kind.as_bytes());
    out.push_str(",\"client\":");
    match &r.client {
        Client::Ip(ip) => push_json_str(out, ip.to_string().as_bytes()),
        Client::Unix => out.push_str("\"unix\""),
        Client::Unknown => out.push_str("null"),
    }
    out.push_str(",\"method\":");
    push_json_str(out, r.method.as_str().as_bytes());
    out.push_str(",\"path\":");
    push_json_str(out, &r.raw_path);
    out.push_str(",\"query\":");
    push_json_str(out, &r.query);
    out.push_str(",\"protocol\":\"");
    out.push_str(protocol(r.version));
    out.push_str("\",\"status\":");
    let _ = match r.status {
        Some(s) => write!(out, "{s}"),
        None => out.write_str("null"),
    };
    let us = r.duration.as_micros();
    let _ = write!(
        out,
        ",\"bytes\":{},\"duration_ms\":{}.{:03}",
        r.bytes,
        us / 1000,
        us % 1000
    );
    for (key, slot) in [("referer", 0), ("user_agent", 1)] {
        let _ = write!(out, ",\"{key}\":");
        match r.request_header(slot) {
            Some(v) => push_json_str(out, v),
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

/// Appends `bytes` as a JSON string: text as UTF-8 (invalid sequences become U+FFFD), escaped
/// by serde_json (`"`, `\` and the C0 controls), and then DEL, the C1 controls and U+2028/U+2029
/// as `\uXXXX` too, so that no raw control character reaches a terminal or a line-based reader.
fn push_json_str(out: &mut String, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let quoted = match serde_json::to_string(&*text) {
        Ok(q) => q,
        // Serializing a str cannot fail; stay valid JSON regardless.
        Err(_) => String::from("\"\""),
    };
    for c in quoted.chars() {
        match c {
            '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 10/Oct/2000:13:55:36 UTC, plus 250 ms.
    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(971_186_136_250)
    }

    /// A record for `fmt`: a GET with a query, a referer and a user agent, answered 200 with
    /// 2326 bytes in 1.234567 s.
    fn record(fmt: &Format) -> Record {
        let request = |name: &str| -> Option<Bytes> {
            match name {
                "referer" => Some(Bytes::from_static(b"http://example.com/start")),
                "user-agent" => Some(Bytes::from_static(b"curl/8.5.0")),
                "x-request-id" => Some(Bytes::from_static(b"abc-123")),
                _ => None,
            }
        };
        let response = |name: &str| -> Option<Bytes> {
            (name == "content-type").then(|| Bytes::from_static(b"text/html"))
        };
        Record {
            kind: "http",
            client: Client::Ip("192.0.2.7".parse().unwrap()),
            method: Method::GET,
            scheme: "http",
            raw_path: Bytes::from_static(b"/apache_pb.gif"),
            query: Bytes::from_static(b"a=1&b=%20"),
            version: HttpVersion::Http11,
            request_headers: fmt.request_headers().iter().map(|n| request(n)).collect(),
            response_headers: fmt.response_headers().iter().map(|n| response(n)).collect(),
            status: Some(200),
            bytes: 2326,
            start: start(),
            duration: Duration::from_micros(1_234_567),
        }
    }

    fn line(spec: &str, edit: impl FnOnce(&mut Record)) -> String {
        let f = Format::parse(spec).unwrap();
        let mut r = record(&f);
        edit(&mut r);
        f.render(&r)
    }

    #[test]
    fn presets() {
        assert_eq!(
            Format::parse("clf").unwrap(),
            Format::parse(COMMON).unwrap()
        );
        assert_eq!(
            Format::parse("common").unwrap(),
            Format::parse("clf").unwrap()
        );
        assert_eq!(
            line("clf", |_| {}),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?a=1&b=%20 HTTP/1.1\" 200 2326\n"
        );
        assert_eq!(
            line("combined", |_| {}),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?a=1&b=%20 HTTP/1.1\" 200 2326 \"http://example.com/start\" \"curl/8.5.0\"\n"
        );
        assert_eq!(
            line("tiny", |_| {}),
            "GET /apache_pb.gif?a=1&b=%20 200 2326 1234ms\n"
        );
        assert_eq!(
            line("json", |_| {}),
            concat!(
                r#"{"time":"2000-10-10T13:55:36.250Z","type":"http","client":"192.0.2.7","method":"GET","#,
                r#""path":"/apache_pb.gif","query":"a=1&b=%20","protocol":"HTTP/1.1","status":200,"#,
                r#""bytes":2326,"duration_ms":1234.567,"referer":"http://example.com/start","user_agent":"curl/8.5.0"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn every_atom() {
        assert_eq!(
            line(
                "%h|%l|%u|%t|%r|%m|%U|%q|%H|%S|%s|%b|%B|%f|%a|%T|%d|%L|%D|%M|%%|100%%",
                |_| {}
            ),
            "192.0.2.7|-|-|[10/Oct/2000:13:55:36 +0000]|GET /apache_pb.gif?a=1&b=%20 HTTP/1.1|GET|\
             /apache_pb.gif|?a=1&b=%20|HTTP/1.1|http|200|2326|2326|http://example.com/start|curl/8.5.0|\
             1|1.234|1.234567|1234567|1234|%|100%\n"
        );
        // Literal text around atoms, and non-ASCII literals, are kept as they are.
        assert_eq!(line("→ %s ←", |_| {}), "→ 200 ←\n");
    }

    #[test]
    fn empty_values() {
        let l = line("%s %b %B %q|%r|%f|%a", |r| {
            r.status = None;
            r.bytes = 0;
            r.query = Bytes::new();
            r.request_headers.iter_mut().for_each(|v| *v = None);
        });
        assert_eq!(l, "- - 0 |GET /apache_pb.gif HTTP/1.1|-|-\n");
        let j = line("json", |r| {
            r.status = None;
            r.bytes = 0;
            r.client = Client::Unknown;
            r.request_headers.iter_mut().for_each(|v| *v = None);
        });
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["status"], serde_json::Value::Null);
        assert_eq!(v["client"], serde_json::Value::Null);
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(v["user_agent"], serde_json::Value::Null);
        assert_eq!(v["bytes"], 0);
    }

    #[test]
    fn header_atoms() {
        let spec =
            "%{X-Request-Id}i %{content-type}o %{x-missing}i %{x-missing}o %{user-agent}i %a";
        let f = Format::parse(spec).unwrap();
        // `%a` and `%{user-agent}i` share one slot; names are lowercased.
        assert_eq!(
            f.request_headers(),
            ["x-request-id", "x-missing", "user-agent"]
        );
        assert_eq!(f.response_headers(), ["content-type", "x-missing"]);
        assert_eq!(
            line(spec, |_| {}),
            "abc-123 text/html - - curl/8.5.0 curl/8.5.0\n"
        );
    }

    #[test]
    fn clients() {
        assert_eq!(line("%h", |r| r.client = Client::Unix), "unix\n");
        assert_eq!(line("%h", |r| r.client = Client::Unknown), "-\n");
        let v6 = |r: &mut Record| r.client = Client::Ip("2001:db8::1".parse().unwrap());
        assert_eq!(line("%h", v6), "2001:db8::1\n");
        assert!(line("json", |r| r.client = Client::Unix).contains(r#""client":"unix""#));
    }

    #[test]
    fn protocols_and_kinds() {
        let l = line("%H %S %r", |r| {
            r.version = HttpVersion::Http10;
            r.scheme = "wss";
        });
        assert_eq!(l, "HTTP/1.0 wss GET /apache_pb.gif?a=1&b=%20 HTTP/1.0\n");
        assert!(line("json", |r| r.kind = "sse").contains(r#""type":"sse""#));
    }

    #[test]
    fn text_escaping_is_exact() {
        let l = line(
            r#""%r" "%U" "%a" "%{x-request-id}i" "%{content-type}o""#,
            |r| {
                r.raw_path = Bytes::from_static(b"/a\x1b[31mred\"\\\x7f\xc3\xa9");
                r.query = Bytes::from_static(b"q=\"\n");
                // Slots: user-agent (from %a) first, then x-request-id.
                r.request_headers[0] = Some(Bytes::from_static(b"evil\" \"x\r\n\t\x00"));
                r.request_headers[1] = Some(Bytes::from_static(b"id\\x41"));
                r.response_headers[0] = Some(Bytes::from_static(b"text/\x9b1m"));
            },
        );
        assert_eq!(
            l,
            concat!(
                r#""GET /a\x1B[31mred\"\\\x7F\xC3\xA9?q=\"\x0A HTTP/1.1" "#,
                r#""/a\x1B[31mred\"\\\x7F\xC3\xA9" "#,
                r#""evil\" \"x\x0D\x0A\x09\x00" "#,
                r#""id\\x41" "#,
                r#""text/\x9B1m""#,
                "\n"
            )
        );
        // One line of printable ASCII, whatever came in.
        assert!(l[..l.len() - 1].bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn json_escaping_is_valid_and_lossless_for_text() {
        let f = Format::parse("json").unwrap();
        let mut r = record(&f);
        r.raw_path = Bytes::from_static(b"/\"quote\\back\x1b[2J\x00");
        r.query = Bytes::from("x=\u{7f}\u{85}\u{2028}é".as_bytes().to_vec());
        r.request_headers[0] = Some(Bytes::from_static(b"bad utf8 \xff\xfe"));
        r.request_headers[1] = Some(Bytes::from_static(b"line\r\nbreak\t\""));
        let l = f.render(&r);
        assert!(l.ends_with("}\n"));
        assert_eq!(l.matches('\n').count(), 1);
        // No raw control characters at all: C0, DEL, C1, or line separators.
        assert!(!l[..l.len() - 1]
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'));
        assert!(l.contains(r#""path":"/\"quote\\back\u001b[2J\u0000""#));
        assert!(l.contains(r#""query":"x=\u007f\u0085\u2028é""#));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["path"], "/\"quote\\back\u{1b}[2J\u{0}");
        assert_eq!(v["query"], "x=\u{7f}\u{85}\u{2028}é");
        assert_eq!(v["referer"], "bad utf8 \u{fffd}\u{fffd}");
        assert_eq!(v["user_agent"], "line\r\nbreak\t\"");
        assert_eq!(v["duration_ms"], 1234.567);
        assert_eq!(v.as_object().unwrap().len(), 12);
    }

    #[test]
    fn parse_errors() {
        let err = |s: &str| Format::parse(s).unwrap_err();
        assert!(err("%z").contains("unknown access log atom %z"));
        assert!(err("%h %").contains("lone %"));
        assert!(err("%{user-agent").contains("not closed"));
        assert!(err("%{}i").contains("no header name"));
        assert!(err("%{a b}i").contains("not a header name"));
        assert!(err("%{é}i").contains("not a header name"));
        assert!(err("%{é}i").contains("at 0"));
        // Positions are byte offsets, and parsing goes on correctly after a header atom.
        assert!(err("%{a}i é %z").contains("%z (at 9)"));
        assert!(err("%{home}e").contains("only %{name}i"));
        assert!(err("%{x}").contains("needs i"));
        assert!(err("%h\n%s").contains("line break"));
        assert!(err("").contains("empty"));
        // Preset names are exact; a "custom" format without atoms is a mistake.
        assert!(err("CLF").contains("neither a preset"));
        assert!(err("100%% sure").contains("neither a preset"));
        assert!("combined".parse::<Format>().is_ok());
    }

    #[test]
    fn header_name_parsing_continues_after_the_brace() {
        let f = Format::parse("%{a}i-%{b}o%s").unwrap();
        assert_eq!(
            f.body,
            Body::Template(vec![
                Piece::RequestHeader(0),
                Piece::Literal("-".into()),
                Piece::ResponseHeader(0),
                Piece::Atom(Atom::Status),
            ])
        );
    }
}
