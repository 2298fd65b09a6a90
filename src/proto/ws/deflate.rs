//! permessage-deflate (RFC 7692): offer negotiation, and the per-connection compressor and
//! decompressor. Raw DEFLATE through `flate2`'s zlib-rs backend (pure Rust, and unlike
//! miniz_oxide it honours window sizes below 15 bits). No I/O.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::read::CloseError;

/// The agreed permessage-deflate parameters of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PmdParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, 9 to 15 bits.
    pub server_max_window_bits: u8,
    /// The client's LZ77 window, 8 to 15 bits.
    pub client_max_window_bits: u8,
}

/// The tail a sync flush ends with; stripped from sent payloads, appended to received ones
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Given all `Sec-WebSocket-Extensions` request header values, picks the first acceptable
/// permessage-deflate offer (RFC 7692 §5, §7.1) and returns the params plus the exact response
/// header value to send (e.g. `permessage-deflate; server_no_context_takeover`).
///
/// An offer with a malformed, duplicate, out-of-range or unknown parameter is declined and the
/// next one tried; other extensions are ignored. `server_max_window_bits=8` is declined too: raw
/// DEFLATE in zlib needs a window of at least 9 bits. The response carries
/// `server_no_context_takeover`, `client_no_context_takeover` and `server_max_window_bits=N`
/// when the offer has them, and `client_max_window_bits=N` only when the offer gave it a value
/// (echoed; the inflater's 15-bit window decodes any client window).
pub(crate) fn negotiate(values: &[&[u8]]) -> Option<(PmdParams, String)> {
    values
        .iter()
        .flat_map(|v| split_outside_quotes(v, b','))
        .filter_map(parse_element)
        .filter_map(Result::ok)
        .filter(|e| e.name.eq_ignore_ascii_case(b"permessage-deflate"))
        .find_map(|e| accept(&e.params))
}

/// One parsed element of an extension list.
#[derive(Debug)]
struct Element<'a> {
    name: &'a [u8],
    params: Vec<(&'a [u8], Option<Vec<u8>>)>,
}

/// The element's syntax is broken.
#[derive(Debug)]
struct Malformed;

/// Parses `token *( ";" token [ "=" ( token / quoted-string ) ] )` with optional whitespace;
/// `None` for an empty list element (allowed by the `#` rule).
fn parse_element(raw: &[u8]) -> Option<Result<Element<'_>, Malformed>> {
    let mut parts = split_outside_quotes(raw, b';');
    let name = trim(parts.next().unwrap_or_default());
    let mut params = Vec::new();
    for part in parts {
        let part = trim(part);
        let (pname, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&part[..eq]), Some(trim(&part[eq + 1..]))),
            None => (part, None),
        };
        if !is_token(pname) {
            return Some(Err(Malformed));
        }
        let value = match value.map(param_value) {
            Some(None) => return Some(Err(Malformed)),
            Some(Some(v)) => Some(v),
            None => None,
        };
        params.push((pname, value));
    }
    if name.is_empty() && params.is_empty() {
        return None;
    }
    if !is_token(name) {
        return Some(Err(Malformed));
    }
    Some(Ok(Element { name, params }))
}

/// A parameter value: a token, or a quoted-string whose unescaped content is a token
/// (RFC 7692 §7.1).
fn param_value(v: &[u8]) -> Option<Vec<u8>> {
    let unquoted = match v {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut escaped = false;
            for &b in inner {
                match (escaped, b) {
                    (false, b'\\') => escaped = true,
                    (false, b'"') => return None,
                    _ => {
                        out.push(b);
                        escaped = false;
                    }
                }
            }
            if escaped {
                return None;
            }
            out
        }
        _ => v.to_vec(),
    };
    is_token(&unquoted).then_some(unquoted)
}

/// Splits at `sep` bytes that are not inside a quoted-string.
fn split_outside_quotes(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |&b| {
        if quoted {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
            false
        } else if b == b'"' {
            quoted = true;
            false
        } else {
            b == sep
        }
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|b| !matches!(b, b' ' | b'\t')) {
        Some(i) => &s[i..],
        None => return &[],
    };
    match s.iter().rposition(|b| !matches!(b, b' ' | b'\t')) {
        Some(i) => &s[..=i],
        None => &[],
    }
}

/// RFC 7230 `token`: one or more tchars.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A window-bits value: a decimal 8 to 15 without leading zeroes.
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Evaluates one permessage-deflate offer's parameters; `None` declines it.
fn accept(params: &[(&[u8], Option<Vec<u8>>)]) -> Option<(PmdParams, String)> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    // Some(None): offered without a value.
    let mut client_bits: Option<Option<u8>> = None;
    for (name, value) in params {
        let name = name.to_ascii_lowercase();
        match (name.as_slice(), value.as_deref()) {
            (b"server_no_context_takeover", None) if !server_nct => server_nct = true,
            (b"client_no_context_takeover", None) if !client_nct => client_nct = true,
            (b"server_max_window_bits", Some(v)) if server_bits.is_none() => {
                // zlib cannot make raw DEFLATE with a 256-byte window.
                server_bits = Some(window_bits(v).filter(|&b| b >= 9)?);
            }
            (b"client_max_window_bits", v) if client_bits.is_none() => {
                client_bits = Some(match v {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    let mut response = String::from("permessage-deflate");
    if server_nct {
        response.push_str("; server_no_context_takeover");
    }
    if client_nct {
        response.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = server_bits {
        response.push_str(&format!("; server_max_window_bits={bits}"));
    }
    if let Some(Some(bits)) = client_bits {
        response.push_str(&format!("; client_max_window_bits={bits}"));
    }
    let params = PmdParams {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits: server_bits.unwrap_or(15),
        client_max_window_bits: client_bits.flatten().unwrap_or(15),
    };
    Some((params, response))
}

/// Inflate output is produced in steps of at most this many bytes, so the size limit is
/// checked before much more than the limit is ever allocated.
const INFLATE_STEP: usize = 16 * 1024;

/// The receiving side: inflates client messages.
///
/// Always uses a 15-bit window, which decodes whatever window the client compresses with
/// (about 46 KiB of state). The context is kept across messages even with
/// `client_no_context_takeover` (harmless: such a client just never refers back). After a block
/// with BFINAL set (RFC 7692 §7.2.3.4) a new stream starts with an empty window.
#[derive(Debug)]
pub(crate) struct Inflater {
    z: Decompress,
    /// Input went in since the stream (re)started or the last message ended, so the message's
    /// end needs the sync-flush tail appended.
    pending: bool,
}

impl Inflater {
    /// A decompressor for a connection with the agreed `p`.
    pub(crate) fn new(_p: &PmdParams) -> Self {
        Self {
            z: Decompress::new_with_window_bits(false, 15),
            pending: false,
        }
    }

    /// Inflates the next piece of a message's compressed payload, appending to `out`.
    /// `limit` (0 = none) caps `out.len()`: past it, 1009, with at most `limit + 1` bytes of
    /// output capacity allocated for the message. Corrupt data is a 1007.
    pub(crate) fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), CloseError> {
        while !input.is_empty() {
            self.pending = true;
            input = self.run_all(input, out, limit)?;
        }
        Ok(())
    }

    /// Ends a message: inflates the sync-flush tail the sender stripped (RFC 7692 §7.2.2).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), CloseError> {
        if self.pending {
            // Should a stream end inside the tail, the rest of it is dropped: the message is
            // complete and the next one starts a fresh stream.
            self.run(&TAIL, out, limit)?;
        }
        self.pending = false;
        Ok(())
    }

    /// [`Self::run`], then what is left of `input` (non-empty only after a stream end); no
    /// progress at all is corrupt data.
    fn run_all<'a>(
        &mut self,
        input: &'a [u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<&'a [u8], CloseError> {
        match self.run(input, out, limit)? {
            0 => Err(CloseError::BAD_COMPRESSION),
            used => Ok(&input[used..]),
        }
    }

    /// Inflates from `input` until it is used up or a stream ends; returns the bytes used.
    fn run(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize, CloseError> {
        let mut used = 0;
        loop {
            reserve_step(out, limit);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress_vec(&input[used..], out, FlushDecompress::None)
                .map_err(|_| CloseError::BAD_COMPRESSION)?;
            let step_in = (self.z.total_in() - in0) as usize;
            let step_out = (self.z.total_out() - out0) as usize;
            used += step_in;
            if limit != 0 && out.len() > limit {
                return Err(CloseError::TOO_BIG);
            }
            if status == Status::StreamEnd {
                // A block with BFINAL set (RFC 7692 §7.2.3.4): start a new stream for
                // whatever follows (the final 0x00 of such a payload plus the tail form an
                // empty stored block).
                self.z.reset(false);
                self.pending = false;
                return Ok(used);
            }
            let out_full = out.len() == out.capacity();
            if used == input.len() && !out_full {
                return Ok(used);
            }
            if step_in == 0 && step_out == 0 && !out_full {
                // No progress with input and room left: cannot happen with a sane stream.
                return Err(CloseError::BAD_COMPRESSION);
            }
        }
    }
}

/// Makes room for the next inflate step, growing geometrically but never past `limit + 1`.
fn reserve_step(out: &mut Vec<u8>, limit: usize) {
    if out.capacity() - out.len() >= INFLATE_STEP / 4 {
        return;
    }
    let mut target = (out.capacity() * 2).max(out.len() + INFLATE_STEP);
    if limit != 0 {
        target = target.min(limit.saturating_add(1));
    }
    if target > out.len() {
        out.reserve_exact(target - out.len());
    }
}

/// The compression level [`Deflater::new`] uses: 1, zlib-rs's fastest.
///
/// Measured (release build, 15-bit window, JSON-like messages of ~550 bytes with context
/// takeover): level 1 compresses at ~110-150 MB/s to 39% of the input, level 6 (zlib's
/// default) at ~30-40 MB/s to 27%; on one 1 MB message 250-350 MB/s to 39% against
/// 40-55 MB/s to 23%. Level 1 is 3.5-6x cheaper in CPU for ~40% more bytes on the wire: the
/// better trade for a server that compresses on its hot path. [`Deflater::with_level`] picks
/// another.
pub(crate) const LEVEL: u32 = 1;

/// The sending side: compresses server messages.
///
/// zlib-rs's deflate state is about 370 KiB with a 15-bit window (260 KiB at 12 bits, 245 KiB
/// at 9), whatever the level: create one only for connections that agreed to the extension.
#[derive(Debug)]
pub(crate) struct Deflater {
    z: Compress,
    no_context_takeover: bool,
}

impl Deflater {
    /// A compressor with the agreed window (`server_max_window_bits`, clamped to zlib's
    /// 9..=15; [`negotiate`] never agrees to 8) and context takeover.
    pub(crate) fn new(p: &PmdParams) -> Self {
        Self::with_level(p, LEVEL)
    }

    /// Like [`Self::new`] with a compression level from 0 (stored) to 9 (best; higher values
    /// count as 9).
    pub(crate) fn with_level(p: &PmdParams, level: u32) -> Self {
        let bits = p.server_max_window_bits.clamp(9, 15);
        let level = Compression::new(level.min(9));
        Self {
            z: Compress::new_with_window_bits(level, false, bits),
            no_context_takeover: p.server_no_context_takeover,
        }
    }

    /// Compresses one whole message payload for a frame with RSV1 set (raw deflate, sync flush,
    /// the trailing `00 00 ff ff` removed; context reset per message when
    /// `server_no_context_takeover`). Appends to `out`.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        let start = out.len();
        let mut input = payload;
        let mut room = payload.len() / 2 + 64;
        loop {
            let len = out.len();
            out.resize(len + room, 0);
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let res = self.z.compress(input, &mut out[len..], FlushCompress::Sync);
            let step_in = (self.z.total_in() - in0) as usize;
            let step_out = (self.z.total_out() - out0) as usize;
            out.truncate(len + step_out);
            input = &input[step_in..];
            // Errors only come from misuse of the stream (none here); stop rather than spin.
            let stuck = res.is_err() || (step_in == 0 && step_out == 0);
            if stuck || (input.is_empty() && step_out < room) {
                break;
            }
            room = room.saturating_mul(2);
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.z.reset();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn neg(values: &[&str]) -> Option<(PmdParams, String)> {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        negotiate(&v)
    }

    fn response(values: &[&str]) -> Option<String> {
        neg(values).map(|(_, r)| r)
    }

    const DEFAULT: PmdParams = PmdParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };

    #[test]
    fn plain_offer() {
        let (p, r) = neg(&["permessage-deflate"]).unwrap();
        assert_eq!(p, DEFAULT);
        assert_eq!(r, "permessage-deflate");
        assert_eq!(
            response(&["  Permessage-Deflate  "]).unwrap(),
            "permessage-deflate"
        );
    }

    #[test]
    fn browser_offer() {
        let (p, r) = neg(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(p, DEFAULT);
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn all_params() {
        let (p, r) = neg(&["permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"])
        .unwrap();
        assert_eq!(
            p,
            PmdParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 12,
            }
        );
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
    }

    #[test]
    fn quoted_values_and_whitespace() {
        let (p, r) = neg(&["permessage-deflate ;server_max_window_bits = \"9\" ;\
             client_max_window_bits=\"15\""])
        .unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (9, 15)
        );
        assert_eq!(
            r,
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=15"
        );
    }

    #[test]
    fn client_window_echoed_only_when_offered_with_value() {
        assert_eq!(
            response(&["permessage-deflate; client_max_window_bits=8"]).unwrap(),
            "permessage-deflate; client_max_window_bits=8"
        );
        assert_eq!(
            response(&["permessage-deflate; server_no_context_takeover"]).unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn bad_offers_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=0x9",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; mux",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; =10",
            "permessage-deflate; server_max_window_bits=",
            "permessage deflate",
        ] {
            assert_eq!(neg(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn first_offer_declined_second_accepted() {
        assert_eq!(
            response(&["permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; server_max_window_bits=9"])
            .unwrap(),
            "permessage-deflate; server_max_window_bits=9"
        );
        assert_eq!(
            response(&[
                "permessage-deflate; foo=1",
                "permessage-deflate; client_no_context_takeover"
            ])
            .unwrap(),
            "permessage-deflate; client_no_context_takeover"
        );
    }

    #[test]
    fn other_extensions_ignored() {
        assert_eq!(neg(&["x-webkit-deflate-frame", "foo; bar=\"a,b;c\""]), None);
        assert_eq!(
            response(&[
                "x-webkit-deflate-frame; no_context_takeover, foo; bar=\"a,b;c\"",
                ", ,permessage-deflate; server_no_context_takeover, permessage-deflate"
            ])
            .unwrap(),
            "permessage-deflate; server_no_context_takeover"
        );
        assert_eq!(
            response(&["foo; x=\"quoted, comma\", permessage-deflate"]).unwrap(),
            "permessage-deflate"
        );
        assert_eq!(neg(&[]), None);
        assert_eq!(neg(&[""]), None);
    }

    /// Inflates a raw DEFLATE payload with exactly `bits` of window (what a client would use).
    fn client_inflate(z: &mut Decompress, payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() || out.len() == out.capacity() {
            out.reserve(64 * 1024);
            let before = z.total_in();
            z.decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .unwrap();
            rest = &rest[(z.total_in() - before) as usize..];
        }
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        let words = [
            "alpha",
            "beta",
            "gamma",
            "{\"id\":",
            "42,",
            "\"name\":\"x\"}",
            " ",
        ];
        let mut s = Vec::new();
        let mut i = 0usize;
        while s.len() < n {
            s.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            i += 1;
        }
        s.truncate(n);
        s
    }

    #[test]
    fn deflater_respects_window_and_takeover() {
        for bits in 9..=15u8 {
            for nct in [false, true] {
                let p = PmdParams {
                    server_no_context_takeover: nct,
                    server_max_window_bits: bits,
                    ..DEFAULT
                };
                let mut d = Deflater::new(&p);
                let mut client = Decompress::new_with_window_bits(false, bits);
                let msg = sample(5000);
                let mut outs = Vec::new();
                for _ in 0..3 {
                    let mut out = BytesMut::from(&b"head"[..]);
                    d.compress(&msg, &mut out);
                    assert_eq!(&out[..4], b"head");
                    let payload = out.split_off(4);
                    if nct {
                        client.reset(false);
                    }
                    assert_eq!(client_inflate(&mut client, &payload), msg);
                    outs.push(payload);
                }
                if nct {
                    assert_eq!(outs[0], outs[1], "fresh context each message");
                } else {
                    assert!(outs[1].len() < outs[0].len(), "context taken over");
                }
            }
        }
    }

    #[test]
    fn deflater_edge_payloads() {
        let mut d = Deflater::new(&DEFAULT);
        let mut out = BytesMut::new();
        d.compress(b"", &mut out);
        assert_eq!(&out[..], [0x00], "RFC 7692 §7.2.3.6");
        let mut z = Decompress::new_with_window_bits(false, 15);
        assert_eq!(client_inflate(&mut z, &out), b"");
        // Incompressible data, larger than the first output guess.
        let mut x = 0x1234_5678_u32;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut out = BytesMut::new();
        d.compress(&noise, &mut out);
        assert_eq!(client_inflate(&mut z, &out), noise);
    }

    #[test]
    fn other_levels_round_trip() {
        let msg = sample(20_000);
        for level in [0, 6, 9, 42] {
            let mut d = Deflater::with_level(&DEFAULT, level);
            let mut z = Decompress::new_with_window_bits(false, 15);
            for _ in 0..2 {
                let mut out = BytesMut::new();
                d.compress(&msg, &mut out);
                assert_eq!(client_inflate(&mut z, &out), msg, "level {level}");
            }
        }
    }

    #[test]
    fn rfc_hello() {
        let mut d = Deflater::new(&DEFAULT);
        let mut out = BytesMut::new();
        d.compress(b"Hello", &mut out);
        let mut z = Decompress::new_with_window_bits(false, 15);
        assert_eq!(client_inflate(&mut z, &out), b"Hello");
    }

    /// 10 MB of zeros, compressed as hard as DEFLATE goes (about 1000:1); made once.
    pub(crate) fn bomb() -> &'static [u8] {
        static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BOMB.get_or_init(|| {
            let n = 10 << 20;
            let mut z = Compress::new(Compression::best(), false);
            let mut out = Vec::with_capacity(n / 500);
            z.compress_vec(&vec![0; n], &mut out, FlushCompress::Sync)
                .unwrap();
            assert_eq!(z.total_in() as usize, n);
            assert!(out.ends_with(&TAIL));
            out.truncate(out.len() - TAIL.len());
            out
        })
    }

    #[test]
    fn inflater_limit_bounds_allocation() {
        let bomb = bomb();
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        let mut inf = Inflater::new(&DEFAULT);
        let mut out = Vec::new();
        let limit = 1 << 20;
        assert_eq!(inf.inflate(bomb, &mut out, limit), Err(CloseError::TOO_BIG));
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn inflater_exact_limit_ok() {
        let mut d = Deflater::new(&DEFAULT);
        let msg = sample(100_000);
        let mut c = BytesMut::new();
        d.compress(&msg, &mut c);
        let mut inf = Inflater::new(&DEFAULT);
        let mut out = Vec::new();
        inf.inflate(&c, &mut out, msg.len()).unwrap();
        inf.finish(&mut out, msg.len()).unwrap();
        assert_eq!(out, msg);
    }

    #[test]
    fn inflater_rejects_garbage() {
        let mut inf = Inflater::new(&DEFAULT);
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        assert_eq!(
            inf.inflate(&[0xff, 0xff, 0xff], &mut out, 0),
            Err(CloseError::BAD_COMPRESSION)
        );
    }
}
