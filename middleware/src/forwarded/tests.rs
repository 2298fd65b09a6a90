use super::parse::{forwarded_elements, parse_node, Element, Node};
use super::*;
use crate::testkit::{get, run, Recorder};
use pagi::{LifespanScope, SendEvent, State};
use std::net::IpAddr;
use std::path::Path as FsPath;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn trusted(spec: &str) -> TrustedProxies {
    TrustedProxies::parse(spec).unwrap()
}

/// An http scope from `peer` with the given headers.
fn from(peer: &str, headers: &[(&str, &str)]) -> HttpScope {
    let mut s = get("/", headers);
    s.client = Some(addr(peer));
    s.server = ServerAddr::Tcp(addr("10.9.9.9:8000"));
    s
}

/// The scope the app gets behind `XForwardedFor` trusting `spec`.
fn through(spec: &str, scope: Scope) -> Scope {
    through_with(XForwardedFor::new(trusted(spec)), scope)
}

fn through_with(mw: XForwardedFor, scope: Scope) -> Scope {
    let rec = Recorder::default();
    let app = mw.layer(rec.clone());
    let (result, events) = run(&app, scope);
    assert!(result.is_ok());
    assert!(!events.is_empty(), "the inner app's events pass through");
    let mut seen = rec.seen();
    assert_eq!(seen.len(), 1);
    seen.remove(0)
}

fn http(spec: &str, req: HttpScope) -> HttpScope {
    match through(spec, Scope::Http(req)) {
        Scope::Http(r) => r,
        other => panic!("scope type changed: {other:?}"),
    }
}

fn host(req: &HttpScope) -> Option<String> {
    req.headers
        .get("host")
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

// ---- TrustedProxies ----

#[test]
fn trusts_exact_v4_and_v6() {
    let t = trusted("192.0.2.1, 2001:db8::1, [2001:db8::2]");
    assert!(t.trusts(ip("192.0.2.1"), false));
    assert!(!t.trusts(ip("192.0.2.2"), false));
    assert!(t.trusts(ip("2001:db8::1"), false));
    assert!(t.trusts(ip("2001:db8:0:0::2"), false));
    assert!(!t.trusts(ip("2001:db8::3"), false));
    assert!(!t.trusts(None, false));
    assert!(!t.trusts(None, true), "unix peers need `unix`");
}

#[test]
fn trusts_cidr_blocks() {
    let t = trusted("10.0.0.0/8,172.16.0.0/12, fd00::/8 , 192.0.2.128 / 25");
    assert!(t.trusts(ip("10.255.0.1"), false));
    assert!(t.trusts(ip("172.31.255.255"), false));
    assert!(!t.trusts(ip("172.32.0.0"), false));
    assert!(t.trusts(ip("fdab::1"), false));
    assert!(!t.trusts(ip("fe80::1"), false));
    assert!(t.trusts(ip("192.0.2.200"), false));
    assert!(!t.trusts(ip("192.0.2.100"), false));
    let all4 = trusted("0.0.0.0/0");
    assert!(all4.trusts(ip("203.0.113.1"), false));
    assert!(!all4.trusts(ip("::1"), false));
}

#[test]
fn ipv4_mapped_peers_match_ipv4_entries() {
    let t = trusted("127.0.0.1, 10.0.0.0/8");
    assert!(t.trusts(ip("::ffff:127.0.0.1"), false));
    assert!(t.trusts(ip("::ffff:10.1.2.3"), false));
    assert!(!t.trusts(ip("::ffff:11.0.0.1"), false));
    assert!(!t.trusts(ip("::1"), false), "::1 is not 127.0.0.1");
    // Entries written in mapped form match plain IPv4 peers too.
    let t = trusted("::ffff:192.0.2.0/120");
    assert!(t.trusts(ip("192.0.2.77"), false));
    assert!(t.trusts(ip("::ffff:192.0.2.77"), false));
    // The whole IPv6 space includes mapped addresses.
    assert!(trusted("::/0").trusts(ip("::ffff:1.2.3.4"), false));
}

#[test]
fn trusts_unix_and_everyone() {
    let t = trusted("UNIX");
    assert!(t.trusts(None, true));
    assert!(!t.trusts(ip("127.0.0.1"), false));
    let any = trusted("*");
    assert!(any.trusts(ip("203.0.113.9"), false));
    assert!(any.trusts(ip("::1"), false));
    assert!(any.trusts(None, true));
    assert!(any.trusts(None, false));
}

#[test]
fn empty_list_trusts_no_one() {
    for spec in ["", " ", ",, ,"] {
        let t = trusted(spec);
        assert_eq!(t, TrustedProxies::default());
        assert!(!t.trusts(ip("127.0.0.1"), false));
        assert!(!t.trusts(None, true));
    }
}

#[test]
fn parse_errors_name_the_bad_item() {
    for (spec, bad, why) in [
        ("127.0.0.1, localhost", "localhost", "not an IP address"),
        ("10.0.0.0/33", "10.0.0.0/33", "0 to 32"),
        ("::/129", "::/129", "0 to 128"),
        ("10.0.0.0/+8", "10.0.0.0/+8", "0 to 32"),
        ("10.0.0.0/", "10.0.0.0/", "0 to 32"),
        ("10.0.0.1/8", "10.0.0.1/8", "did you mean 10.0.0.0/8"),
        (
            "2001:db8::1/32",
            "2001:db8::1/32",
            "did you mean 2001:db8::/32",
        ),
        ("unix, 1.2.3.4.5", "1.2.3.4.5", "not an IP address"),
        ("fe80::1%eth0", "fe80::1%eth0", "not an IP address"),
        ("**", "**", "not an IP address"),
    ] {
        let err = TrustedProxies::parse(spec).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{spec}: {err}");
        assert!(err.contains(why), "{spec}: {err}");
    }
}

#[test]
fn debug_lists_the_entries() {
    let t = trusted("10.0.0.0/8, ::1, unix, *");
    assert_eq!(
        format!("{t:?}"),
        r#"[10.0.0.0/8, ::1/128, unix, *]"#.replace('"', "")
    );
}

// ---- parsing ----

#[test]
fn node_forms() {
    let a = |s: &str| Some(Node::Addr(addr(s)));
    assert_eq!(parse_node("192.0.2.1"), a("192.0.2.1:0"));
    assert_eq!(parse_node(" 192.0.2.1:8080 "), a("192.0.2.1:8080"));
    assert_eq!(parse_node("2001:db8::1"), a("[2001:db8::1]:0"));
    assert_eq!(parse_node("[2001:db8::1]"), a("[2001:db8::1]:0"));
    assert_eq!(parse_node("[2001:db8::1]:443"), a("[2001:db8::1]:443"));
    assert_eq!(parse_node("192.0.2.1:_abc"), a("192.0.2.1:0"));
    assert_eq!(parse_node("unknown"), Some(Node::Hidden));
    assert_eq!(parse_node("UNKNOWN"), Some(Node::Hidden));
    assert_eq!(parse_node("_hidden.proxy-1"), Some(Node::Hidden));
    assert_eq!(parse_node("_gw:_p"), Some(Node::Hidden));
    assert_eq!(parse_node("unknown:8080"), Some(Node::Hidden));
    for bad in [
        "",
        "_",
        "_a b",
        "example.com",
        "192.0.2.1:",
        "192.0.2.1:70000",
        "192.0.2.1:-1",
        "[2001:db8::1",
        "[2001:db8::1]443",
        "[192.0.2.1]",
        "fe80::1%eth0",
        "1.2.3.4:5:6",
        "_gw:",
        "unknown:x y",
    ] {
        assert_eq!(parse_node(bad), None, "{bad:?}");
    }
}

fn el(for_: Option<&str>, proto: Option<&str>, host: Option<&str>) -> Option<Element> {
    Some(Element {
        for_: for_.map(Into::into),
        proto: proto.map(Into::into),
        host: host.map(Into::into),
    })
}

#[test]
fn forwarded_grammar() {
    let parse = |v: &str| forwarded_elements([v.as_bytes()]);
    assert_eq!(
        parse(r#"for=192.0.2.60;proto=http;by=203.0.113.43"#),
        [el(Some("192.0.2.60"), Some("http"), None)]
    );
    assert_eq!(
        parse(r#"For="[2001:db8:cafe::17]:4711", for=192.0.2.43 ; Proto=HTTPS ; host="a.example""#),
        [
            el(Some("[2001:db8:cafe::17]:4711"), None, None),
            el(Some("192.0.2.43"), Some("HTTPS"), Some("a.example")),
        ]
    );
    // Escapes, a comma inside quotes, empty items and empty pairs, extension parameters.
    assert_eq!(
        parse(r#" , for="_a\"b,c";;ext=1;host=x ,, "#),
        [el(Some("_a\"b,c"), None, Some("x"))]
    );
    // Malformed elements are marked, the others still parse.
    assert_eq!(
        parse("for=1.2.3.4, for, for=5.6.7.8"),
        [
            el(Some("1.2.3.4"), None, None),
            None,
            el(Some("5.6.7.8"), None, None)
        ]
    );
    for bad in [
        "for",
        "for=",
        "=x",
        "for =1.2.3.4",
        "for= 1.2.3.4",
        "for=1.2.3.4 x",
        "for=[::1]",
        "for=\"unterminated",
        "for=1.2.3.4;for=5.6.7.8",
        "by=a;by=b",
        "for=\"a\u{1}b\"",
        "for=\"a\"b",
    ] {
        assert_eq!(parse(bad), [None], "{bad:?}");
    }
}

// ---- the middleware: trust and the walk ----

#[test]
fn untrusted_peer_changes_nothing() {
    let req = from(
        "203.0.113.5:4000",
        &[
            ("host", "app.internal"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "443"),
            ("forwarded", "for=2.2.2.2;proto=https"),
        ],
    );
    let out = http("10.0.0.0/8, unix", req.clone());
    assert_eq!(out.client, req.client);
    assert_eq!(out.scheme, Scheme::Http);
    assert_eq!(out.server, req.server);
    assert_eq!(out.headers, req.headers);
    assert!(out.extensions.other.is_empty());
}

#[test]
fn trusted_peer_without_headers_changes_nothing() {
    let req = from("10.0.0.1:4000", &[("host", "app.internal")]);
    let out = http("10.0.0.0/8", req.clone());
    assert_eq!(out.client, req.client);
    assert!(out.extensions.other.is_empty());
}

#[test]
fn walk_from_the_right_skips_trusted_hops_and_ignores_spoofed_ones() {
    // The client sent "6.6.6.6, 7.7.7.7" itself; our two proxies appended the rest.
    let req = from(
        "10.0.0.2:4000",
        &[("x-forwarded-for", "6.6.6.6, 7.7.7.7, 203.0.113.7, 10.0.0.1")],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("203.0.113.7:0")));
}

#[test]
fn all_hops_trusted_gives_the_leftmost() {
    let req = from(
        "10.0.0.2:4000",
        &[("x-forwarded-for", "10.0.0.5, 10.0.0.1")],
    );
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("10.0.0.5:0")));
    let req = from("192.0.2.1:4000", &[("x-forwarded-for", "6.6.6.6, 7.7.7.7")]);
    assert_eq!(http("*", req).client, Some(addr("6.6.6.6:0")));
}

#[test]
fn several_fields_are_one_list() {
    let req = from(
        "10.0.0.2:4000",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-other", "1"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.3"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    );
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("203.0.113.9:0")));
    // The client's field comes first, the proxy's last: the proxy's still wins.
    let req = from(
        "10.0.0.2:4000",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    );
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("203.0.113.9:0")));
}

#[test]
fn entries_with_ports_and_ipv6() {
    for (entry, want) in [
        ("203.0.113.9:5555", "203.0.113.9:5555"),
        ("[2001:db8::9]:5555", "[2001:db8::9]:5555"),
        ("[2001:db8::9]", "[2001:db8::9]:0"),
        ("2001:db8::9", "[2001:db8::9]:0"),
        ("  203.0.113.9  ", "203.0.113.9:0"),
    ] {
        let req = from("10.0.0.2:4000", &[("x-forwarded-for", entry)]);
        assert_eq!(
            http("10.0.0.0/8", req).client,
            Some(addr(want)),
            "{entry:?}"
        );
    }
}

#[test]
fn trusted_ipv6_and_mapped_peers() {
    let req = from("[2001:db8::10]:4000", &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(
        http("2001:db8::/64", req).client,
        Some(addr("203.0.113.9:0"))
    );
    let req = from(
        "[::ffff:127.0.0.1]:4000",
        &[("x-forwarded-for", "203.0.113.9")],
    );
    assert_eq!(http("127.0.0.1", req).client, Some(addr("203.0.113.9:0")));
}

#[test]
fn unix_socket_peers() {
    let unix_req = || {
        let mut s = get("/", &[("x-forwarded-for", "203.0.113.9:1234")]);
        s.client = None;
        s.server = ServerAddr::Unix(Arc::from(FsPath::new("/run/app.sock")));
        s
    };
    let out = http("unix", unix_req());
    assert_eq!(out.client, Some(addr("203.0.113.9:1234")));
    assert_eq!(out.extensions.other["forwarded"]["peer"], "unix");
    assert_eq!(
        out.extensions.other["forwarded"]["server"],
        json!(["/run/app.sock", null])
    );
    let out = http("127.0.0.1, ::1", unix_req());
    assert_eq!(
        out.client, None,
        "unix peers are not trusted without `unix`"
    );
    let out = http("*", unix_req());
    assert_eq!(out.client, Some(addr("203.0.113.9:1234")));
}

#[test]
fn bad_entries_stop_the_walk() {
    for list in [
        "203.0.113.9, garbage",
        "203.0.113.9, example.com",
        "203.0.113.9, unknown",
        "203.0.113.9, _hidden",
        "203.0.113.9, 1.2.3.4:99999",
        "203.0.113.9, fe80::1%eth0",
    ] {
        let req = from(
            "10.0.0.2:4000",
            &[("x-forwarded-for", list), ("x-forwarded-proto", "https")],
        );
        let out = http("10.0.0.0/8", req);
        assert_eq!(out.client, Some(addr("10.0.0.2:4000")), "{list:?}");
        // The proto header is the nearest proxy's own value and still applies.
        assert_eq!(out.scheme, Scheme::Https, "{list:?}");
    }
    // Garbage to the left of the client is never reached.
    let req = from(
        "10.0.0.2:4000",
        &[("x-forwarded-for", "<script>, 203.0.113.9, 10.0.0.1")],
    );
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("203.0.113.9:0")));
    // Non-UTF-8 bytes in an entry.
    let mut req = from("10.0.0.2:4000", &[]);
    req.headers.push("x-forwarded-for", &b"\xff\xfe"[..]);
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("10.0.0.2:4000")));
    assert!(out.extensions.other.is_empty());
}

#[test]
fn empty_entries_are_skipped() {
    let req = from("10.0.0.2:4000", &[("x-forwarded-for", " , 203.0.113.9,, ")]);
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("203.0.113.9:0")));
    let req = from("10.0.0.2:4000", &[("x-forwarded-for", "")]);
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("10.0.0.2:4000")));
    assert!(out.extensions.other.is_empty());
}

// ---- scheme, host, port ----

#[test]
fn proto_sets_the_scheme_per_scope_type() {
    let h = |proto: &'static str| -> HttpScope {
        from(
            "10.0.0.2:4000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", proto),
            ],
        )
    };
    let cases = [
        ("https", Scheme::Https, Scheme::Wss),
        ("HTTPS", Scheme::Https, Scheme::Wss),
        ("wss", Scheme::Https, Scheme::Wss),
        ("http", Scheme::Http, Scheme::Ws),
        ("ws", Scheme::Http, Scheme::Ws),
    ];
    for (proto, on_http, on_ws) in cases {
        assert_eq!(http("10.0.0.0/8", h(proto)).scheme, on_http, "{proto}");
        let mut ws = h(proto);
        ws.scheme = Scheme::Ws;
        match through("10.0.0.0/8", Scope::Websocket(ws)) {
            Scope::Websocket(r) => assert_eq!(r.scheme, on_ws, "{proto}"),
            other => panic!("{other:?}"),
        }
        match through("10.0.0.0/8", Scope::Sse(h(proto))) {
            Scope::Sse(r) => assert_eq!(r.scheme, on_http, "{proto}"),
            other => panic!("{other:?}"),
        }
    }
    for ignored in ["ftp", "", "https x", "javascript"] {
        let mut req = h("x");
        req.scheme = Scheme::Https;
        set_header(&mut req.headers, "x-forwarded-proto", Bytes::from(ignored));
        assert_eq!(http("10.0.0.0/8", req).scheme, Scheme::Https, "{ignored:?}");
    }
}

#[test]
fn proto_uses_the_last_value() {
    let req = from(
        "10.0.0.2:4000",
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-proto", "http, https"),
        ],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.scheme, Scheme::Https);
    assert_eq!(
        out.client,
        Some(addr("10.0.0.2:4000")),
        "no XFF: client kept"
    );
    assert_eq!(out.extensions.other["forwarded"]["scheme"], "http");
}

#[test]
fn forwarded_host_replaces_the_host_header() {
    let req = from(
        "10.0.0.2:4000",
        &[
            ("accept", "*/*"),
            ("host", "backend:8000"),
            ("x-forwarded-host", "old.example, www.example.com:8443"),
            ("user-agent", "t"),
        ],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(host(&out).as_deref(), Some("www.example.com:8443"));
    let names: Vec<_> = out.headers.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        names,
        ["accept", "host", "x-forwarded-host", "user-agent"].map(Bytes::from)
    );
    assert_eq!(out.extensions.other["forwarded"]["host"], "backend:8000");

    // A request without a host gets one; invalid values are ignored.
    let out = http(
        "10.0.0.0/8",
        from("10.0.0.2:4000", &[("x-forwarded-host", "[::1]:80")]),
    );
    assert_eq!(host(&out).as_deref(), Some("[::1]:80"));
    assert_eq!(out.extensions.other["forwarded"]["host"], Value::Null);
    for bad in ["a b", "evil.com/path", "user@host", "", "h:port"] {
        let req = from(
            "10.0.0.2:4000",
            &[("host", "backend"), ("x-forwarded-host", bad)],
        );
        assert_eq!(
            host(&http("10.0.0.0/8", req)).as_deref(),
            Some("backend"),
            "{bad:?}"
        );
    }
}

#[test]
fn forwarded_port_sets_the_server_port() {
    let req = from("10.0.0.2:4000", &[("x-forwarded-port", "443")]);
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.server, ServerAddr::Tcp(addr("10.9.9.9:443")));
    assert_eq!(
        out.extensions.other["forwarded"]["server"],
        json!(["10.9.9.9", 8000])
    );

    for bad in ["0", "65536", "https", "-1", " "] {
        let req = from("10.0.0.2:4000", &[("x-forwarded-port", bad)]);
        let out = http("10.0.0.0/8", req);
        assert_eq!(
            out.server,
            ServerAddr::Tcp(addr("10.9.9.9:8000")),
            "{bad:?}"
        );
    }

    let mut req = get(
        "/",
        &[("x-forwarded-port", "443"), ("x-forwarded-proto", "https")],
    );
    let sock: Arc<FsPath> = Arc::from(FsPath::new("/run/app.sock"));
    req.server = ServerAddr::Unix(sock.clone());
    let out = http("unix", req);
    assert_eq!(
        out.server,
        ServerAddr::Unix(sock),
        "a unix server has no port"
    );
    assert_eq!(out.scheme, Scheme::Https);
}

// ---- RFC 7239 ----

#[test]
fn forwarded_header_basic_and_quoted_ipv6() {
    let req = from(
        "10.0.0.2:4000",
        &[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https;host="www.example.com""#,
        )],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("[2001:db8:cafe::17]:4711")));
    assert_eq!(out.scheme, Scheme::Https);
    assert_eq!(host(&out).as_deref(), Some("www.example.com"));
}

#[test]
fn forwarded_walks_elements_and_uses_the_client_element() {
    // The client's own element, then the one our edge proxy added, then our inner proxy's.
    let req = from(
        "10.0.0.2:4000",
        &[
            ("forwarded", "for=6.6.6.6;proto=http;host=spoof.example"),
            (
                "forwarded",
                "for=203.0.113.9;proto=https;host=www.example.com, for=10.0.0.1;proto=http;host=edge",
            ),
        ],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("203.0.113.9:0")));
    assert_eq!(out.scheme, Scheme::Https);
    assert_eq!(host(&out).as_deref(), Some("www.example.com"));
}

#[test]
fn forwarded_obfuscated_for_stops_the_walk() {
    for node in ["unknown", "_hidden", "\"_gw:_p\""] {
        let value = format!("for=203.0.113.9, for={node};proto=https");
        let req = from("10.0.0.2:4000", &[("forwarded", value.as_str())]);
        let out = http("10.0.0.0/8", req);
        assert_eq!(out.client, Some(addr("10.0.0.2:4000")), "{node}");
        assert_eq!(
            out.scheme,
            Scheme::Https,
            "{node}: proto of that element applies"
        );
    }
    // An element without for= stops it too.
    let req = from(
        "10.0.0.2:4000",
        &[("forwarded", "for=203.0.113.9, proto=https")],
    );
    let out = http("10.0.0.0/8", req);
    assert_eq!(out.client, Some(addr("10.0.0.2:4000")));
    assert_eq!(out.scheme, Scheme::Https);
}

#[test]
fn forwarded_malformed_element_uses_nothing() {
    for value in [
        "for=203.0.113.9;proto=https, for=10.0.0.1;proto",
        "for=203.0.113.9, for=\"10.0.0.1",
        "for=203.0.113.9, for=10.0.0.1;for=10.0.0.3",
        "for=203.0.113.9, for=gateway.internal;proto=https",
        "for=2001:db8::1;proto=https", // IPv6 must be quoted and bracketed
    ] {
        let req = from(
            "10.0.0.2:4000",
            &[
                ("host", "backend"),
                ("forwarded", value),
                ("x-forwarded-for", "1.1.1.1"),
            ],
        );
        let out = http("10.0.0.0/8", req);
        assert_eq!(out.client, Some(addr("10.0.0.2:4000")), "{value}");
        assert_eq!(out.scheme, Scheme::Http, "{value}");
        assert!(out.extensions.other.is_empty(), "{value}");
    }
    // A malformed element left of the client is never reached.
    let req = from("10.0.0.2:4000", &[("forwarded", "for, for=203.0.113.9")]);
    assert_eq!(http("10.0.0.0/8", req).client, Some(addr("203.0.113.9:0")));
}

#[test]
fn forwarded_takes_precedence_over_x_forwarded() {
    let headers: &[(&str, &str)] = &[
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "x.example"),
        ("x-forwarded-port", "8443"),
        ("forwarded", "for=203.0.113.9"),
    ];
    let out = http("10.0.0.0/8", from("10.0.0.2:4000", headers));
    assert_eq!(out.client, Some(addr("203.0.113.9:0")));
    assert_eq!(
        out.scheme,
        Scheme::Http,
        "X-Forwarded-Proto is not mixed in"
    );
    assert_eq!(host(&out), None);
    assert_eq!(out.server, ServerAddr::Tcp(addr("10.9.9.9:8000")));

    let xf = XForwardedFor::new(trusted("10.0.0.0/8")).headers(ProxyHeaders::XForwarded);
    let Scope::Http(out) = through_with(xf, Scope::Http(from("10.0.0.2:4000", headers))) else {
        panic!()
    };
    assert_eq!(out.client, Some(addr("198.51.100.1:0")));
    assert_eq!(out.scheme, Scheme::Https);
    assert_eq!(host(&out).as_deref(), Some("x.example"));
    assert_eq!(out.server, ServerAddr::Tcp(addr("10.9.9.9:8443")));

    let fw = XForwardedFor::new(trusted("10.0.0.0/8")).headers(ProxyHeaders::Forwarded);
    let only_x = &headers[..4];
    let Scope::Http(out) = through_with(fw, Scope::Http(from("10.0.0.2:4000", only_x))) else {
        panic!()
    };
    assert_eq!(out.client, Some(addr("10.0.0.2:4000")));
    assert!(out.extensions.other.is_empty());
}

// ---- the rest ----

#[test]
fn records_the_original_view() {
    let req = from(
        "[2001:db8::2]:4000",
        &[("host", "backend"), ("x-forwarded-for", "203.0.113.9")],
    );
    let out = http("2001:db8::/32", req);
    assert_eq!(
        out.extensions.other["forwarded"],
        json!({"peer": "[2001:db8::2]:4000", "server": ["10.9.9.9", 8000],
               "scheme": "http", "host": "backend"})
    );
    // Stacked twice: the outer record (the real connection) is kept.
    let mw = XForwardedFor::new(trusted("*"));
    let mut scope = Scope::Http(from(
        "10.0.0.2:4000",
        &[("x-forwarded-for", "10.0.0.7, 203.0.113.9")],
    ));
    assert!(mw.apply(&mut scope));
    assert!(mw.apply(&mut scope));
    let req = scope.request().unwrap();
    assert_eq!(req.extensions.other["forwarded"]["peer"], "10.0.0.2:4000");
}

#[test]
fn lifespan_is_untouched() {
    let rec = Recorder::default();
    let app = XForwardedFor::new(trusted("*")).layer(rec.clone());
    let (result, events) = run(&app, Scope::Lifespan(LifespanScope::new(State::shared())));
    assert!(result.is_ok());
    assert_eq!(events, [SendEvent::LifespanStartupComplete]);
    assert!(matches!(rec.seen()[..], [Scope::Lifespan(_)]));
    let mut scope = Scope::Lifespan(LifespanScope::new(State::shared()));
    assert!(!XForwardedFor::new(trusted("*")).apply(&mut scope));
}

#[test]
fn works_in_a_stack_and_with_websockets() {
    let rec = Recorder::default();
    let app = crate::Stack::new()
        .layer(XForwardedFor::new(trusted("127.0.0.1")))
        .app(rec.clone());
    let mut ws = from(
        "127.0.0.1:5000",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
    );
    ws.scheme = Scheme::Ws;
    let (result, events) = run(&app, Scope::Websocket(ws));
    assert!(result.is_ok());
    assert!(matches!(events[..], [SendEvent::WebsocketAccept { .. }]));
    let seen = rec.only();
    assert_eq!(seen.client, Some(addr("203.0.113.9:0")));
    assert_eq!(seen.scheme, Scheme::Wss);
}
