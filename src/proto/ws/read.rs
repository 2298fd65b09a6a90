//! Client→server frames into messages: frame validation, reassembly, incremental UTF-8
//! validation and permessage-deflate inflation, on a caller-owned buffer. No I/O.

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::Inflater;
use super::frame::{
    apply_mask, close_code_valid, parse_header, parse_start, Header, OpCode, Start,
};
use super::utf8::Utf8Cursor;

/// Size limits for received messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest assembled message, in bytes after inflate (and, for a compressed message, of
    /// compressed payload too); 0 = unlimited.
    pub max_message: usize,
    /// Most frames in one message; 0 = unlimited.
    pub max_fragments: usize,
}

/// One item decoded from the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// A complete text message (valid UTF-8).
    Text(String),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping and its payload (≤ 125 bytes).
    Ping(Bytes),
    /// A pong and its payload (≤ 125 bytes).
    Pong(Bytes),
    /// A close frame: its code and reason, or `None` for an empty payload.
    Close(Option<(u16, String)>),
}

/// Why the connection must be failed: the close code to send and a short reason for the log
/// and the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseError {
    /// 1002 (protocol error), 1007 (invalid payload data) or 1009 (message too big).
    pub code: u16,
    /// Short human text.
    pub reason: &'static str,
}

impl CloseError {
    /// A message (or its compressed form) is larger than [`Limits::max_message`].
    pub(crate) const TOO_BIG: Self = Self {
        code: 1009,
        reason: "message too big",
    };
    /// A message has more frames than [`Limits::max_fragments`].
    pub(crate) const TOO_MANY_FRAGMENTS: Self = Self {
        code: 1009,
        reason: "too many fragments",
    };
    /// A text message or close reason is not UTF-8.
    pub(crate) const INVALID_UTF8: Self = Self {
        code: 1007,
        reason: "invalid UTF-8",
    };
    /// A compressed message does not inflate.
    pub(crate) const BAD_COMPRESSION: Self = Self {
        code: 1007,
        reason: "invalid compressed data",
    };

    /// A protocol error (1002).
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        Self { code: 1002, reason }
    }
}

impl std::fmt::Display for CloseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for CloseError {}

/// Decodes client frames into [`Incoming`] items.
///
/// The payload of a data frame is unmasked in place in the caller's buffer and taken in pieces
/// as it arrives, so invalid UTF-8 or an oversized inflated message is reported as soon as the
/// offending bytes are in, and memory is only held for the message being assembled (one
/// growing buffer, so reassembly is linear). An unfragmented, uncompressed data frame that is
/// already complete in the buffer is split off without copying.
#[derive(Debug)]
pub(crate) struct Reader {
    limits: Limits,
    inflater: Option<Inflater>,
    /// The data message being assembled.
    msg: Option<Message>,
    /// Set by the first error; every later call repeats it.
    failed: Option<CloseError>,
}

/// A data message being assembled.
#[derive(Debug)]
struct Message {
    text: bool,
    compressed: bool,
    /// The (inflated) payload so far.
    data: Vec<u8>,
    utf8: Utf8Cursor,
    frames: usize,
    /// Payload bytes announced by the frame headers so far (compressed bytes when compressed).
    wire: u64,
    /// The frame whose payload is being read; `None` between frames.
    frame: Option<Frame>,
}

/// The payload still to come of the current data frame.
#[derive(Debug, Clone, Copy)]
struct Frame {
    remaining: u64,
    key: [u8; 4],
    /// Payload bytes of the frame seen so far, modulo 4 (the masking phase).
    offset: usize,
    fin: bool,
}

/// What reading payload bytes led to.
enum Progress {
    NeedMore,
    FrameDone,
    MessageDone,
}

impl Reader {
    /// A reader with the given limits; `inflater` when permessage-deflate was agreed (RSV1 is a
    /// protocol error without it).
    pub(crate) fn new(limits: Limits, inflater: Option<Inflater>) -> Self {
        Self {
            limits,
            inflater,
            msg: None,
            failed: None,
        }
    }

    /// Consumes bytes from the front of `buf` (client→server frames) and returns the next
    /// complete item, or `Ok(None)` when it needs more bytes (everything consumable has been
    /// consumed: what is left is part of a frame header or of a control frame; the caller
    /// appends more and calls again). Errors are final: later calls return the same error.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, CloseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.step(buf);
        if let Err(e) = result {
            self.failed = Some(e);
            self.msg = None;
        }
        result
    }

    /// Bytes currently pinned by an incomplete message (the capacity of its assembly buffer;
    /// bytes still in the caller's buffer are not counted), for memory accounting.
    #[cfg_attr(not(test), allow(dead_code))] // memory accounting in tests
    pub(crate) fn pending_bytes(&self) -> usize {
        self.msg.as_ref().map_or(0, |m| m.data.capacity())
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, CloseError> {
        let limit = self.limits.max_message;
        loop {
            if let Some(msg) = &mut self.msg {
                match msg.read_payload(buf, self.inflater.as_mut(), limit)? {
                    Progress::NeedMore => return Ok(None),
                    Progress::FrameDone => {}
                    Progress::MessageDone => {
                        if let Some(msg) = self.msg.take() {
                            return msg.finish(self.inflater.as_mut(), limit).map(Some);
                        }
                    }
                }
            }
            let [b0, b1, ..] = buf[..] else {
                return Ok(None);
            };
            let start = parse_start(b0, b1)?;
            self.check_sequence(start)?;
            let Some(h) = parse_header(buf, start)? else {
                return Ok(None);
            };
            if h.opcode.is_control() {
                return control(h, buf);
            }
            if let Some(item) = self.begin_data(h, buf)? {
                return Ok(Some(item));
            }
        }
    }

    /// The rules that depend on whether a message is open and on the agreed extension.
    fn check_sequence(&self, s: Start) -> Result<(), CloseError> {
        match s.opcode {
            OpCode::Continuation if self.msg.is_none() => {
                Err(CloseError::protocol("continuation frame without a message"))
            }
            OpCode::Continuation if s.rsv1 => {
                Err(CloseError::protocol("RSV1 set on a continuation frame"))
            }
            OpCode::Text | OpCode::Binary if self.msg.is_some() => Err(CloseError::protocol(
                "new data frame inside a fragmented message",
            )),
            OpCode::Text | OpCode::Binary if s.rsv1 && self.inflater.is_none() => {
                Err(CloseError::protocol("RSV1 set without permessage-deflate"))
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong if s.rsv1 => {
                Err(CloseError::protocol("RSV1 set on a control frame"))
            }
            _ => Ok(()),
        }
    }

    /// Starts a data frame whose header `h` is complete in `buf` (sequence already checked).
    /// Returns the message at once when it takes the zero-copy fast path.
    fn begin_data(
        &mut self,
        h: Header,
        buf: &mut BytesMut,
    ) -> Result<Option<Incoming>, CloseError> {
        let limits = self.limits;
        let over = |total: u64| limits.max_message != 0 && total > limits.max_message as u64;
        if let Some(msg) = &mut self.msg {
            msg.frames += 1;
            if limits.max_fragments != 0 && msg.frames > limits.max_fragments {
                return Err(CloseError::TOO_MANY_FRAGMENTS);
            }
            msg.wire = msg.wire.saturating_add(h.len);
            if over(msg.wire) {
                return Err(CloseError::TOO_BIG);
            }
            buf.advance(h.header_len);
            msg.frame = Some(Frame::new(&h));
            return Ok(None);
        }
        if over(h.len) {
            return Err(CloseError::TOO_BIG);
        }
        let text = h.opcode == OpCode::Text;
        let len = usize::try_from(h.len).map_err(|_| CloseError::TOO_BIG)?;
        if h.fin && !h.rsv1 && buf.len() - h.header_len >= len {
            buf.advance(h.header_len);
            let mut payload = buf.split_to(len);
            apply_mask(&mut payload, h.mask, 0);
            return Ok(Some(if text {
                let s = std::str::from_utf8(&payload).map_err(|_| CloseError::INVALID_UTF8)?;
                Incoming::Text(s.to_owned())
            } else {
                Incoming::Binary(payload.freeze())
            }));
        }
        buf.advance(h.header_len);
        self.msg = Some(Message {
            text,
            compressed: h.rsv1,
            data: Vec::new(),
            utf8: Utf8Cursor::default(),
            frames: 1,
            wire: h.len,
            frame: Some(Frame::new(&h)),
        });
        Ok(None)
    }
}

/// Decodes a control frame whose header `h` is complete in `buf`, once its payload is too.
fn control(h: Header, buf: &mut BytesMut) -> Result<Option<Incoming>, CloseError> {
    // At most 125: checked by parse_header.
    let len = h.len as usize;
    if buf.len() - h.header_len < len {
        return Ok(None);
    }
    buf.advance(h.header_len);
    let mut payload = buf.split_to(len);
    apply_mask(&mut payload, h.mask, 0);
    Ok(Some(match h.opcode {
        OpCode::Ping => Incoming::Ping(payload.freeze()),
        OpCode::Pong => Incoming::Pong(payload.freeze()),
        _ => close(&payload)?,
    }))
}

/// Parses a close payload (RFC 6455 §5.5.1, §7.4).
fn close(payload: &[u8]) -> Result<Incoming, CloseError> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(CloseError::protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_valid(code) {
                return Err(CloseError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseError::INVALID_UTF8)?;
            Ok(Incoming::Close(Some((code, reason.to_owned()))))
        }
    }
}

impl Frame {
    fn new(h: &Header) -> Self {
        Self {
            remaining: h.len,
            key: h.mask,
            offset: 0,
            fin: h.fin,
        }
    }
}

impl Message {
    /// Takes what `buf` holds of the current frame's payload (unmasking it in place).
    fn read_payload(
        &mut self,
        buf: &mut BytesMut,
        inflater: Option<&mut Inflater>,
        limit: usize,
    ) -> Result<Progress, CloseError> {
        let Some(mut frame) = self.frame.take() else {
            return Ok(Progress::FrameDone);
        };
        let n = usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if n > 0 {
            let chunk = &mut buf[..n];
            apply_mask(chunk, frame.key, frame.offset);
            self.absorb(chunk, inflater, limit)?;
            buf.advance(n);
            frame.offset = (frame.offset + n) % 4;
            frame.remaining -= n as u64;
        }
        Ok(if frame.remaining > 0 {
            self.frame = Some(frame);
            Progress::NeedMore
        } else if frame.fin {
            Progress::MessageDone
        } else {
            Progress::FrameDone
        })
    }

    /// Adds unmasked payload bytes to the message, checking size and UTF-8 as they come.
    fn absorb(
        &mut self,
        chunk: &[u8],
        inflater: Option<&mut Inflater>,
        limit: usize,
    ) -> Result<(), CloseError> {
        if self.compressed {
            // Never missing: RSV1 is refused without an inflater.
            let inflater = inflater.ok_or(CloseError::BAD_COMPRESSION)?;
            inflater.inflate(chunk, &mut self.data, limit)?;
        } else {
            reserve(&mut self.data, chunk.len(), limit);
            self.data.extend_from_slice(chunk);
        }
        if self.text {
            self.utf8
                .advance(&self.data)
                .map_err(|_| CloseError::INVALID_UTF8)?;
        }
        Ok(())
    }

    /// Completes the message after its last frame.
    fn finish(
        mut self,
        inflater: Option<&mut Inflater>,
        limit: usize,
    ) -> Result<Incoming, CloseError> {
        if self.compressed {
            let inflater = inflater.ok_or(CloseError::BAD_COMPRESSION)?;
            inflater.finish(&mut self.data, limit)?;
        }
        if !self.text {
            return Ok(Incoming::Binary(Bytes::from(self.data)));
        }
        self.utf8
            .advance(&self.data)
            .map_err(|_| CloseError::INVALID_UTF8)?;
        if !self.utf8.is_complete(self.data.len()) {
            return Err(CloseError::INVALID_UTF8);
        }
        String::from_utf8(self.data)
            .map(Incoming::Text)
            .map_err(|_| CloseError::INVALID_UTF8)
    }
}

/// Makes room for `additional` bytes, doubling the capacity but never past `limit` (0 = none),
/// which the frame headers already guarantee the message fits in.
fn reserve(data: &mut Vec<u8>, additional: usize, limit: usize) {
    let need = data.len() + additional;
    if need <= data.capacity() {
        return;
    }
    let mut target = (data.capacity() * 2).max(need).max(64);
    if limit != 0 {
        target = target.min(limit.max(need));
    }
    data.reserve_exact(target - data.len());
}

#[cfg(test)]
mod tests {
    use super::super::deflate::{Deflater, PmdParams};
    use super::super::frame::test_util::{frame, raw_frame, LenForm};
    use super::*;
    use std::time::{Duration, Instant};

    const PMD: PmdParams = PmdParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };

    fn plain() -> Reader {
        Reader::new(Limits::default(), None)
    }

    fn pmd() -> Reader {
        Reader::new(Limits::default(), Some(Inflater::new(&PMD)))
    }

    fn limited(max_message: usize, max_fragments: usize) -> Reader {
        let limits = Limits {
            max_message,
            max_fragments,
        };
        Reader::new(limits, Some(Inflater::new(&PMD)))
    }

    /// Feeds `input` in pieces of `step` bytes, collecting items until the first error. After
    /// every `Ok(None)` at most a partial header or control frame may be left unconsumed.
    fn feed(r: &mut Reader, input: &[u8], step: usize) -> Result<Vec<Incoming>, CloseError> {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(item) = r.decode(&mut buf)? {
                items.push(item);
            }
            assert!(buf.len() < 14 + 125, "{} bytes left unconsumed", buf.len());
        }
        Ok(items)
    }

    /// Decodes `input` all at once, byte by byte and in 7-byte pieces; all must agree (on the
    /// items, or on the error code).
    fn decode(make: fn() -> Reader, input: &[u8]) -> Result<Vec<Incoming>, CloseError> {
        let whole = feed(&mut make(), input, input.len());
        for step in [1, 7] {
            let pieces = feed(&mut make(), input, step);
            match (&whole, &pieces) {
                (Err(a), Err(b)) => assert_eq!(a.code, b.code, "step {step}"),
                _ => assert_eq!(whole, pieces, "step {step}"),
            }
        }
        whole
    }

    fn code(make: fn() -> Reader, input: &[u8]) -> u16 {
        match decode(make, input) {
            Err(e) => e.code,
            Ok(items) => panic!("expected an error, got {items:?}"),
        }
    }

    fn text(s: &str) -> Incoming {
        Incoming::Text(s.to_owned())
    }

    fn binary(b: &[u8]) -> Incoming {
        Incoming::Binary(Bytes::copy_from_slice(b))
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    use OpCode::{Binary as Bin, Close, Continuation as Cont, Ping, Pong, Text};

    #[test]
    fn single_frames() {
        let input = cat(&[
            frame(true, false, Text, "héllo 😀".as_bytes()),
            frame(true, false, Bin, &[0, 1, 2, 255]),
            frame(true, false, Text, b""),
            frame(true, false, Bin, b""),
            frame(true, false, Ping, b"p"),
            frame(true, false, Pong, b""),
        ]);
        assert_eq!(
            decode(plain, &input).unwrap(),
            [
                text("héllo 😀"),
                binary(&[0, 1, 2, 255]),
                text(""),
                binary(b""),
                Incoming::Ping(Bytes::from_static(b"p")),
                Incoming::Pong(Bytes::new()),
            ]
        );
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        // "😀" (F0 9F 98 80) split across fragments.
        let input = cat(&[
            frame(false, false, Text, b"ab\xf0\x9f"),
            frame(true, false, Ping, b"1"),
            frame(false, false, Cont, b""),
            frame(true, false, Pong, b"2"),
            frame(false, false, Cont, b"\x98"),
            frame(true, false, Cont, b"\x80cd"),
            frame(false, false, Bin, b"x"),
            frame(true, false, Ping, b""),
            frame(true, false, Cont, b"y"),
        ]);
        assert_eq!(
            decode(plain, &input).unwrap(),
            [
                Incoming::Ping(Bytes::from_static(b"1")),
                Incoming::Pong(Bytes::from_static(b"2")),
                text("ab😀cd"),
                Incoming::Ping(Bytes::new()),
                binary(b"xy"),
            ]
        );
    }

    #[test]
    fn close_frames() {
        let mut valid = vec![frame(true, false, Close, b"")];
        let codes: [u16; 12] = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        let codes = codes.into_iter().chain([3000, 3999, 4000, 4999]);
        for code in codes.clone() {
            valid.push(frame(true, false, Close, &code.to_be_bytes()));
        }
        let mut with_reason = 1000u16.to_be_bytes().to_vec();
        with_reason.extend_from_slice("bye é".as_bytes());
        valid.push(frame(true, false, Close, &with_reason));
        let items = decode(plain, &cat(&valid)).unwrap();
        let mut want = vec![Incoming::Close(None)];
        want.extend(codes.map(|c| Incoming::Close(Some((c, String::new())))));
        want.push(Incoming::Close(Some((1000, "bye é".to_owned()))));
        assert_eq!(items, want);

        for bad in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let input = frame(true, false, Close, &bad.to_be_bytes());
            assert_eq!(code(plain, &input), 1002, "code {bad}");
        }
        assert_eq!(code(plain, &frame(true, false, Close, &[0x03])), 1002);
        assert_eq!(
            code(plain, &frame(true, false, Close, b"\x03\xe8\xff")),
            1007
        );
        assert_eq!(
            code(plain, &frame(true, false, Close, b"\x03\xe8\xe2\x82")),
            1007
        );
    }

    #[test]
    fn large_messages_and_length_forms() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [125, 126, 65_535, 65_536, 70_000] {
            let p = &payload[..len];
            for form in [LenForm::Minimal, LenForm::Ext16, LenForm::Ext64] {
                let input = raw_frame(0x82, p, form);
                assert_eq!(
                    decode(plain, &input).unwrap(),
                    [binary(p)],
                    "{len} {form:?}"
                );
            }
        }
        // Non-minimal lengths on small and control frames.
        for form in [LenForm::Ext16, LenForm::Ext64] {
            let input = cat(&[
                raw_frame(0x81, b"hello", form),
                raw_frame(0x89, b"ping", form),
                raw_frame(0x88, b"", form),
            ]);
            let items = decode(plain, &input).unwrap();
            assert_eq!(
                items,
                [
                    text("hello"),
                    Incoming::Ping(Bytes::from_static(b"ping")),
                    Incoming::Close(None)
                ]
            );
        }
        // A 200 000-byte text message in 64 KiB fragments.
        let ascii: Vec<u8> = payload.iter().map(|b| b'a' + b % 26).collect();
        let mut frames = Vec::new();
        for (i, chunk) in ascii.chunks(65_536).enumerate() {
            let op = if i == 0 { Text } else { Cont };
            frames.push(frame(i == 3, false, op, chunk));
        }
        let want = String::from_utf8(ascii.clone()).unwrap();
        assert_eq!(
            decode(plain, &cat(&frames)).unwrap(),
            [Incoming::Text(want)]
        );
    }

    #[test]
    fn many_small_fragments() {
        let mut frames = vec![frame(false, false, Bin, b"")];
        for i in 0..20_000u32 {
            frames.push(frame(false, false, Cont, &i.to_le_bytes()));
        }
        frames.push(frame(true, false, Cont, b"end"));
        let items = feed(&mut plain(), &cat(&frames), usize::MAX).unwrap();
        let mut want: Vec<u8> = (0..20_000u32).flat_map(u32::to_le_bytes).collect();
        want.extend_from_slice(b"end");
        assert_eq!(items, [binary(&want)]);
    }

    #[test]
    fn protocol_errors() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        assert_eq!(code(plain, &unmasked), 1002, "unmasked");
        assert_eq!(
            code(plain, &raw_frame(0xA1, b"x", LenForm::Minimal)),
            1002,
            "rsv2"
        );
        assert_eq!(
            code(plain, &raw_frame(0x91, b"x", LenForm::Minimal)),
            1002,
            "rsv3"
        );
        assert_eq!(
            code(pmd, &raw_frame(0xE1, b"x", LenForm::Minimal)),
            1002,
            "rsv1+2"
        );
        for op in (3..=7).chain(0xB..=0xF) {
            assert_eq!(
                code(plain, &raw_frame(0x80 | op, b"", LenForm::Minimal)),
                1002
            );
        }
        for op in [Ping, Pong, Close] {
            let long = frame(true, false, op, &[b'x'; 126]);
            assert_eq!(code(plain, &long), 1002, "{op:?} too long");
            let fragmented = frame(false, false, op, b"");
            assert_eq!(code(plain, &fragmented), 1002, "{op:?} fragmented");
            assert_eq!(code(pmd, &frame(true, true, op, b"")), 1002, "{op:?} rsv1");
        }
        assert_eq!(
            code(plain, &frame(true, false, Cont, b"x")),
            1002,
            "stray cont"
        );
        let after_message = cat(&[
            frame(true, false, Text, b"a"),
            frame(true, false, Cont, b""),
        ]);
        assert_eq!(
            code(plain, &after_message),
            1002,
            "cont after a whole message"
        );
        for op in [Text, Bin] {
            let nested = cat(&[frame(false, false, Bin, b"a"), frame(true, false, op, b"b")]);
            assert_eq!(code(plain, &nested), 1002, "{op:?} inside a message");
        }
        // RSV1 without the extension, and on a continuation with it.
        assert_eq!(code(plain, &frame(true, true, Text, b"x")), 1002);
        let cont_rsv1 = cat(&[frame(false, true, Bin, b""), frame(true, true, Cont, b"")]);
        assert_eq!(code(pmd, &cont_rsv1), 1002);
        let mut huge = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        huge.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(code(plain, &huge), 1002, "64-bit length with the MSB set");
    }

    #[test]
    fn errors_are_reported_before_the_payload() {
        let mut r = plain();
        let mut buf = BytesMut::from(&[0x81u8, 0x05][..]);
        assert_eq!(
            r.decode(&mut buf).unwrap_err().code,
            1002,
            "unmasked, 2 bytes in"
        );
        let mut r = limited(10, 0);
        let mut buf = BytesMut::from(&raw_frame(0x82, &[0; 11], LenForm::Minimal)[..6]);
        assert_eq!(r.decode(&mut buf), Err(CloseError::TOO_BIG), "header only");
    }

    #[test]
    fn errors_are_final() {
        let mut r = plain();
        let mut buf = BytesMut::from(&frame(true, false, Cont, b"")[..]);
        let err = r.decode(&mut buf).unwrap_err();
        let mut buf = BytesMut::from(&frame(true, false, Text, b"ok")[..]);
        assert_eq!(r.decode(&mut buf), Err(err));
    }

    #[test]
    fn invalid_utf8() {
        assert_eq!(code(plain, &frame(true, false, Text, b"a\xffb")), 1007);
        assert_eq!(
            code(plain, &frame(true, false, Text, b"a\xe2\x82")),
            1007,
            "incomplete"
        );
        let split = cat(&[
            frame(false, false, Text, b"\xe2\x82"),
            frame(true, false, Cont, b"A"),
        ]);
        assert_eq!(code(plain, &split), 1007);
        let cut = cat(&[
            frame(false, false, Text, b"ok\xe2"),
            frame(true, false, Cont, b""),
        ]);
        assert_eq!(
            code(plain, &cut),
            1007,
            "incomplete at the end of a fragmented message"
        );
        let valid_surrogate_lookalike = frame(true, false, Text, "\u{D7FF}\u{E000}".as_bytes());
        assert!(decode(plain, &valid_surrogate_lookalike).is_ok());
        assert_eq!(
            code(plain, &frame(true, false, Text, b"\xed\xa0\x80")),
            1007
        );
    }

    #[test]
    fn invalid_utf8_fails_fast() {
        // The invalid byte is in the first half of a frame whose second half never comes.
        let mut payload = vec![b'a'; 1000];
        payload[10] = 0xff;
        let input = frame(true, false, Text, &payload);
        let mut r = plain();
        let mut buf = BytesMut::from(&input[..input.len() / 2]);
        assert_eq!(r.decode(&mut buf), Err(CloseError::INVALID_UTF8));

        // An impossible sequence start (F4 90) in the second fragment's first bytes.
        let mut r = plain();
        let input = cat(&[
            frame(false, false, Text, b"ok\xf4"),
            frame(true, false, Cont, &[0x90; 500]),
        ]);
        let first = frame(false, false, Text, b"ok\xf4").len();
        let mut buf = BytesMut::from(&input[..first + 8 + 1]);
        assert_eq!(r.decode(&mut buf), Err(CloseError::INVALID_UTF8));
    }

    #[test]
    fn size_limits() {
        let make_10 = || limited(10, 0);
        let exact = frame(true, false, Bin, &[7; 10]);
        assert_eq!(decode(make_10, &exact).unwrap(), [binary(&[7; 10])]);
        assert_eq!(code(make_10, &frame(true, false, Bin, &[7; 11])), 1009);
        let fragmented = cat(&[
            frame(false, false, Text, b"12345"),
            frame(false, false, Cont, b"12345"),
            frame(true, false, Cont, b"1"),
        ]);
        assert_eq!(code(make_10, &fragmented), 1009);
        // The limit is per message.
        let two = cat(&[exact.clone(), exact]);
        assert_eq!(decode(make_10, &two).unwrap().len(), 2);

        let make_2 = || limited(0, 2);
        let two_frames = cat(&[
            frame(false, false, Bin, b"a"),
            frame(true, false, Cont, b"b"),
        ]);
        assert_eq!(decode(make_2, &two_frames).unwrap(), [binary(b"ab")]);
        let three = cat(&[
            frame(false, false, Bin, b"a"),
            frame(false, false, Cont, b"b"),
            frame(true, false, Cont, b"c"),
        ]);
        assert_eq!(code(make_2, &three), 1009);
        // Control frames do not count as fragments.
        let with_ping = cat(&[
            frame(false, false, Bin, b"a"),
            frame(true, false, Ping, b""),
            frame(true, false, Cont, b"b"),
        ]);
        assert_eq!(decode(make_2, &with_ping).unwrap().len(), 2);
    }

    #[test]
    fn pending_bytes_tracks_the_open_message() {
        let mut r = plain();
        assert_eq!(r.pending_bytes(), 0);
        let mut buf = BytesMut::from(&frame(false, false, Bin, &[1; 100])[..]);
        assert_eq!(r.decode(&mut buf), Ok(None));
        assert!(r.pending_bytes() >= 100);
        buf.extend_from_slice(&frame(true, false, Cont, &[2; 50]));
        assert!(matches!(r.decode(&mut buf), Ok(Some(Incoming::Binary(b))) if b.len() == 150));
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn fast_path_does_not_copy() {
        let input = cat(&[
            frame(true, false, Bin, &[9; 1000]),
            frame(true, false, Text, b"x"),
        ]);
        let mut buf = BytesMut::from(&input[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Ok(Some(Incoming::Binary(b))) = plain().decode(&mut buf) else {
            panic!("expected a binary message");
        };
        assert_eq!(&b[..], &[9; 1000][..]);
        assert!(
            range.contains(&(b.as_ptr() as usize)),
            "payload split off in place"
        );
        assert_eq!(
            buf.len(),
            frame(true, false, Text, b"x").len(),
            "next frame left"
        );
    }

    #[test]
    fn partial_header_left_in_buffer() {
        let input = frame(true, false, Bin, &[1; 300]);
        let mut r = plain();
        for n in 0..8 {
            let mut buf = BytesMut::from(&input[..n]);
            assert_eq!(r.decode(&mut buf), Ok(None));
            assert_eq!(buf.len(), n, "a partial header is not consumed");
        }
    }

    /// Compresses each message with `d` into one frame, or `split` frames when > 1.
    fn compressed_frames(d: &mut Deflater, op: OpCode, msg: &[u8], split: usize) -> Vec<u8> {
        let mut c = BytesMut::new();
        d.compress(msg, &mut c);
        let size = c.len().div_ceil(split.max(1)).max(1);
        let pieces: Vec<&[u8]> = if c.is_empty() {
            vec![&[]]
        } else {
            c.chunks(size).collect()
        };
        let last = pieces.len() - 1;
        let mut out = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let op = if i == 0 { op } else { Cont };
            out.extend(frame(i == last, i == 0, op, piece));
        }
        out
    }

    #[test]
    fn rfc7692_examples() {
        let hello = || text("Hello");
        let single = frame(
            true,
            true,
            Text,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        );
        assert_eq!(decode(pmd, &single).unwrap(), [hello()], "7.2.3.1");
        let fragmented = cat(&[
            frame(false, true, Text, &[0xf2, 0x48, 0xcd]),
            frame(true, false, Cont, &[0xc9, 0xc9, 0x07, 0x00]),
        ]);
        assert_eq!(
            decode(pmd, &fragmented).unwrap(),
            [hello()],
            "7.2.3.1 fragmented"
        );
        let shared = cat(&[
            single.clone(),
            frame(true, true, Text, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        ]);
        assert_eq!(decode(pmd, &shared).unwrap(), [hello(), hello()], "7.2.3.2");
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let stored = frame(true, true, Text, &stored);
        assert_eq!(decode(pmd, &stored).unwrap(), [hello()], "7.2.3.3");
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let bfinal = frame(true, true, Text, &bfinal);
        let bfinal_twice = cat(&[bfinal.clone(), bfinal]);
        assert_eq!(
            decode(pmd, &bfinal_twice).unwrap(),
            [hello(), hello()],
            "7.2.3.4"
        );
        let bfinal_exact = frame(
            true,
            true,
            Text,
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        );
        let then_single = cat(&[bfinal_exact, single]);
        assert_eq!(
            decode(pmd, &then_single).unwrap(),
            [hello(), hello()],
            "BFINAL, no pad"
        );
        let two_blocks = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let two_blocks = frame(true, true, Text, &two_blocks);
        assert_eq!(decode(pmd, &two_blocks).unwrap(), [hello()], "7.2.3.5");
        let empty = cat(&[
            frame(true, true, Bin, &[0x00]),
            frame(true, true, Text, b""),
        ]);
        assert_eq!(
            decode(pmd, &empty).unwrap(),
            [binary(b""), text("")],
            "7.2.3.6"
        );
    }

    #[test]
    fn deflate_round_trip_all_windows() {
        let messages: Vec<Vec<u8>> = vec![
            b"Hello".to_vec(),
            Vec::new(),
            "json {\"k\": [1, 2, 3], \"v\": \"é😀\"} "
                .repeat(500)
                .into_bytes(),
            (0..70_000u64).map(|i| (i * i % 253) as u8).collect(),
            b"Hello".to_vec(),
        ];
        for bits in 9..=15u8 {
            for nct in [false, true] {
                let p = PmdParams {
                    server_no_context_takeover: nct,
                    client_no_context_takeover: nct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                let mut d = Deflater::new(&p);
                let mut input = Vec::new();
                let mut want = Vec::new();
                for (i, m) in messages.iter().enumerate() {
                    let is_text = std::str::from_utf8(m).is_ok();
                    let op = if is_text { Text } else { Bin };
                    input.extend(compressed_frames(&mut d, op, m, i % 3 + 1));
                    input.extend(frame(true, false, Ping, b"between"));
                    want.push(match std::str::from_utf8(m) {
                        Ok(s) => text(s),
                        Err(_) => binary(m),
                    });
                    want.push(Incoming::Ping(Bytes::from_static(b"between")));
                }
                let mut r = Reader::new(Limits::default(), Some(Inflater::new(&p)));
                assert_eq!(
                    feed(&mut r, &input, input.len()).unwrap(),
                    want,
                    "{bits} {nct}"
                );
                if bits == 9 || bits == 15 {
                    let mut r = Reader::new(Limits::default(), Some(Inflater::new(&p)));
                    assert_eq!(
                        feed(&mut r, &input, 1).unwrap(),
                        want,
                        "{bits} {nct} bytewise"
                    );
                }
            }
        }
    }

    #[test]
    fn deflate_mixed_with_uncompressed_messages() {
        let mut d = Deflater::new(&PMD);
        let input = cat(&[
            compressed_frames(&mut d, Text, b"one", 1),
            frame(true, false, Text, b"two"),
            compressed_frames(&mut d, Bin, b"three", 2),
        ]);
        let want = [text("one"), text("two"), binary(b"three")];
        assert_eq!(decode(pmd, &input).unwrap(), want);

        // Control frames between the fragments of a compressed message (which refers back to
        // the messages above: same stream, same reader).
        let mut c = BytesMut::new();
        d.compress(b"one, two, three, ping in between", &mut c);
        let third = c.len() / 3;
        let more = cat(&[
            input,
            frame(false, true, Text, &c[..third]),
            frame(true, false, Ping, b"a"),
            frame(false, false, Cont, &c[third..2 * third]),
            frame(true, false, Pong, b"b"),
            frame(false, false, Cont, b""),
            frame(true, false, Cont, &c[2 * third..]),
        ]);
        let mut want = Vec::from(want);
        want.extend([
            Incoming::Ping(Bytes::from_static(b"a")),
            Incoming::Pong(Bytes::from_static(b"b")),
            text("one, two, three, ping in between"),
        ]);
        assert_eq!(decode(pmd, &more).unwrap(), want);
    }

    #[test]
    fn zip_bomb_fails_fast() {
        let bomb = frame(true, true, Bin, super::super::deflate::tests::bomb());
        let started = Instant::now();
        let mut r = limited(1 << 20, 0);
        assert_eq!(feed(&mut r, &bomb, bomb.len()), Err(CloseError::TOO_BIG));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Piece by piece: fails before all of the bomb has arrived.
        let mut r = limited(1 << 20, 0);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        for piece in bomb.chunks(256) {
            buf.extend_from_slice(piece);
            fed += piece.len();
            match r.decode(&mut buf) {
                Ok(None) => assert!(r.pending_bytes() <= (1 << 20) + 1),
                Err(e) => {
                    assert_eq!(e, CloseError::TOO_BIG);
                    break;
                }
                Ok(Some(item)) => panic!("decoded {item:?}"),
            }
        }
        assert!(
            fed < bomb.len(),
            "failed after {fed} of {} bytes",
            bomb.len()
        );
    }

    #[test]
    fn compressed_limits() {
        let mut d = Deflater::new(&PMD);
        let msg = vec![b'z'; 5000];
        let input = compressed_frames(&mut d, Text, &msg, 1);
        // Inflated size exactly at the limit is fine; one byte less is not.
        let mut r = limited(5000, 0);
        let want = [text(&"z".repeat(5000))];
        assert_eq!(feed(&mut r, &input, 1).unwrap(), want);
        let mut r = limited(4999, 0);
        assert_eq!(feed(&mut r, &input, input.len()), Err(CloseError::TOO_BIG));
        // Compressed size over the limit fails on the header.
        let mut x = 7u32;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let input = compressed_frames(&mut d, Bin, &noise, 1);
        let mut r = limited(4000, 0);
        let header = &input[..8];
        assert_eq!(feed(&mut r, header, 8), Err(CloseError::TOO_BIG));
        // Fragment count applies to compressed messages too.
        let mut d = Deflater::new(&PMD);
        let input = compressed_frames(&mut d, Bin, &noise, 3);
        let mut r = limited(0, 2);
        assert_eq!(feed(&mut r, &input, 1), Err(CloseError::TOO_MANY_FRAGMENTS));
    }

    #[test]
    fn compressed_payload_errors() {
        let mut d = Deflater::new(&PMD);
        let input = compressed_frames(&mut d, Text, b"ok \xff not utf-8", 1);
        assert_eq!(code(pmd, &input), 1007);
        let mut d = Deflater::new(&PMD);
        let input = compressed_frames(&mut d, Text, b"cut \xe2\x82", 2);
        assert_eq!(code(pmd, &input), 1007);
        // BTYPE 11 is reserved.
        assert_eq!(code(pmd, &frame(true, true, Bin, &[0xff, 0xff])), 1007);
    }
}
