//! An HTTP/2 request head as scope fields. No I/O.
//!
//! The `h2` crate has already checked the frame-level rules (pseudo-header set and order,
//! no connection-specific fields, `te: trailers` only, lowercase names); what is left is the
//! PAGI mapping and the checks HTTP/1.1 requests get too:
//!
//! - pseudo-headers are not headers in the scope; `:authority` becomes `host` (first, replacing
//!   any `host` field the client also sent), a `host` field alone is kept;
//! - `cookie` fields (which HTTP/2 clients may split, RFC 9113 §8.2.3) are merged with `"; "`;
//! - `:path` is split into `raw_path` and `query_string` and percent-decoded into `path`;
//!   CONNECT (which has no `:path`) carries its authority as the path, as on HTTP/1.1;
//! - `:scheme` must be `http` or `https`, but the listener decides the scope's `scheme`
//!   (`https` on TLS): a cleartext client cannot claim TLS (behind a proxy, `--proxy-headers`
//!   maps `X-Forwarded-Proto` for HTTP/1.1 and HTTP/2 alike).

use bytes::Bytes;
use http::header::HeaderName;
use pagi::{Headers, Method, Path};

use crate::error::Reject;
use crate::proto::h1::parse::{decode_path, valid_host};

/// The scope fields of one request.
#[derive(Debug)]
pub struct RequestParts {
    /// The method.
    pub method: Method,
    /// The path as sent (for CONNECT, the authority).
    pub raw_path: Bytes,
    /// The query, without `?`.
    pub query: Bytes,
    /// The percent-decoded path.
    pub path: Path,
    /// Headers: lowercase names, `host` from `:authority`, `cookie` merged.
    pub headers: Headers,
    /// The `content-length` the client announced, if any.
    pub content_length: Option<u64>,
}

impl RequestParts {
    /// Whether this is a HEAD request.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether this is a CONNECT request.
    pub fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }
}

/// Maps a request head (as `h2` delivers it) to scope fields, or refuses it with the status
/// the HTTP/1.1 engine would give the same fault.
///
/// Every byte string of the scope is a copy of its own (the root path is static): small
/// allocations, but no reference count to share between them, so nothing atomic to pay per
/// field when the scope is made or dropped.
pub fn request_parts(head: &http::request::Parts) -> Result<RequestParts, Reject> {
    let method = method(&head.method)?;
    let connect = head.method == http::Method::CONNECT;
    let uri = &head.uri;
    let authority = match uri.authority() {
        Some(a) => {
            let a = a.as_str().as_bytes();
            if !valid_host(a) {
                return Err(Reject::BadRequest("malformed :authority"));
            }
            Some(Bytes::copy_from_slice(a))
        }
        None => None,
    };
    let (raw_path, query, path) = if connect {
        let Some(a) = &authority else {
            return Err(Reject::BadRequest("CONNECT without :authority"));
        };
        (a.clone(), Bytes::new(), decode_path(a))
    } else {
        match uri.scheme_str() {
            Some("http" | "https") | None => {}
            Some(_) => return Err(Reject::BadRequest("unsupported :scheme")),
        }
        let raw = uri.path();
        if raw.is_empty() {
            return Err(Reject::BadRequest("empty :path"));
        }
        if raw == "*" && head.method != http::Method::OPTIONS {
            return Err(Reject::BadRequest("asterisk form outside OPTIONS"));
        }
        let query = uri
            .query()
            .map_or_else(Bytes::new, |q| Bytes::copy_from_slice(q.as_bytes()));
        if raw == "/" {
            let root = Bytes::from_static(b"/");
            (root.clone(), query, Path::from_decoded(root))
        } else if raw.contains('%') {
            let raw = Bytes::copy_from_slice(raw.as_bytes());
            let path = decode_path(&raw);
            (raw, query, path)
        } else {
            // Two copies rather than one shared: see above.
            let path = Path::from_decoded(Bytes::copy_from_slice(raw.as_bytes()));
            (Bytes::copy_from_slice(raw.as_bytes()), query, path)
        }
    };

    let mut list: Vec<(Bytes, Bytes)> = Vec::with_capacity(head.headers.len() + 1);
    let mut cookie: Option<usize> = None;
    let mut content_length = None;
    let mut hosts = 0;
    let has_authority = authority.is_some();
    if let Some(a) = authority {
        list.push((Bytes::from_static(b"host"), a));
    }
    for (name, value) in &head.headers {
        let v = value.as_bytes();
        if name == http::header::HOST {
            hosts += 1;
            if has_authority {
                continue; // `:authority` wins (RFC 9113 §8.3.1)
            }
            if !valid_host(v) {
                return Err(Reject::BadRequest("malformed host"));
            }
        } else if name == http::header::COOKIE {
            if let Some(i) = cookie {
                let prev = &list[i].1;
                let mut merged = Vec::with_capacity(prev.len() + 2 + v.len());
                merged.extend_from_slice(prev);
                merged.extend_from_slice(b"; ");
                merged.extend_from_slice(v);
                list[i].1 = Bytes::from(merged);
                continue;
            }
            cookie = Some(list.len());
        } else if name == http::header::CONTENT_LENGTH {
            content_length = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        }
        list.push((name_bytes(name), Bytes::copy_from_slice(v)));
    }
    if hosts > 1 && !has_authority {
        return Err(Reject::BadRequest("more than one host"));
    }
    Ok(RequestParts {
        method,
        raw_path,
        query,
        path,
        headers: Headers::from(list),
        content_length,
    })
}

/// The method, without copying the common ones.
fn method(m: &http::Method) -> Result<Method, Reject> {
    let b = match m.as_str() {
        "GET" => return Ok(Method::GET),
        "POST" => return Ok(Method::POST),
        "HEAD" => return Ok(Method::HEAD),
        "PUT" => return Ok(Method::PUT),
        "DELETE" => Bytes::from_static(b"DELETE"),
        "OPTIONS" => Bytes::from_static(b"OPTIONS"),
        "PATCH" => Bytes::from_static(b"PATCH"),
        "CONNECT" => Bytes::from_static(b"CONNECT"),
        other => Bytes::copy_from_slice(other.as_bytes()),
    };
    Method::from_bytes(b).ok_or(Reject::BadRequest("malformed method"))
}

/// A header name as bytes; the common ones without an allocation.
fn name_bytes(n: &HeaderName) -> Bytes {
    macro_rules! known {
        ($s:expr, $($name:literal),* $(,)?) => {
            match $s {
                $($name => Bytes::from_static($name.as_bytes()),)*
                other => Bytes::copy_from_slice(other.as_bytes()),
            }
        };
    }
    known!(
        n.as_str(),
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "content-length",
        "content-type",
        "cookie",
        "host",
        "if-modified-since",
        "if-none-match",
        "origin",
        "referer",
        "user-agent",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-request-id",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(b: http::request::Builder) -> http::request::Parts {
        b.body(()).unwrap().into_parts().0
    }

    fn fields(h: &Headers) -> Vec<(String, String)> {
        h.iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn authority_becomes_host_and_cookies_merge() {
        let p = parts(
            http::Request::builder()
                .method("POST")
                .uri("https://example.com:8443/a%20b/c?x=1&y=%20")
                .header("cookie", "a=1")
                .header("host", "ignored.example")
                .header("x-thing", "v")
                .header("cookie", "b=2"),
        );
        let r = request_parts(&p).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(&r.raw_path[..], b"/a%20b/c");
        assert_eq!(r.path, "/a b/c");
        assert_eq!(&r.query[..], b"x=1&y=%20");
        assert_eq!(
            fields(&r.headers),
            [
                ("host".into(), "example.com:8443".into()),
                ("cookie".into(), "a=1; b=2".into()),
                ("x-thing".into(), "v".into()),
            ]
        );
        assert_eq!(r.content_length, None);
    }

    #[test]
    fn host_field_kept_without_authority() {
        let mut p = parts(
            http::Request::builder()
                .uri("/x")
                .header("host", "h.example"),
        );
        let r = request_parts(&p).unwrap();
        assert_eq!(fields(&r.headers), [("host".into(), "h.example".into())]);
        p.headers.append("host", "other.example".parse().unwrap());
        assert_eq!(
            request_parts(&p).unwrap_err(),
            Reject::BadRequest("more than one host")
        );
    }

    #[test]
    fn paths_split_and_decode() {
        for (uri, raw, path, query) in [
            ("http://a.example/", "/", "/", ""),
            ("http://a.example/?x=1", "/", "/", "x=1"),
            ("http://a.example/a/b?q", "/a/b", "/a/b", "q"),
            (
                "http://a.example/a%20b/%2F?q=%20",
                "/a%20b/%2F",
                "/a b//",
                "q=%20",
            ),
        ] {
            let r = request_parts(&parts(http::Request::builder().uri(uri))).unwrap();
            assert_eq!(&r.raw_path[..], raw.as_bytes(), "{uri}");
            assert_eq!(r.path.as_str(), Some(path), "{uri}");
            assert_eq!(&r.query[..], query.as_bytes(), "{uri}");
        }
    }

    #[test]
    fn connect_carries_its_authority_as_path() {
        let mut p = parts(http::Request::builder().method("CONNECT"));
        p.uri = http::Uri::builder()
            .authority("db.example:5432")
            .build()
            .unwrap();
        let r = request_parts(&p).unwrap();
        assert!(r.is_connect());
        assert_eq!(&r.raw_path[..], b"db.example:5432");
        assert_eq!(
            fields(&r.headers),
            [("host".into(), "db.example:5432".into())]
        );
    }

    #[test]
    fn refusals() {
        let p = parts(
            http::Request::builder()
                .method("GET")
                .uri("ftp://a.example/x"),
        );
        assert_eq!(
            request_parts(&p).unwrap_err(),
            Reject::BadRequest("unsupported :scheme")
        );
        let p = parts(
            http::Request::builder()
                .uri("http://a.example/")
                .header("content-length", "12"),
        );
        assert_eq!(request_parts(&p).unwrap().content_length, Some(12));
        assert!(request_parts(&p)
            .unwrap()
            .headers
            .contains("content-length"));
    }

    #[test]
    fn common_names_are_static() {
        assert_eq!(name_bytes(&http::header::USER_AGENT), "user-agent");
        assert_eq!(
            name_bytes(&HeaderName::from_static("x-custom")),
            Bytes::from_static(b"x-custom")
        );
    }
}
