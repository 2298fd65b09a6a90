//! RFC 6455 frame layout: opcodes, header encoding (server→client) and parsing (client→server),
//! payload masking, close payloads. No I/O.

use bytes::{BufMut, BytesMut};

use super::read::CloseError;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes have no variant: they are rejected on parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// `0x0`: the next fragment of a data message.
    Continuation,
    /// `0x1`: the first frame of a UTF-8 text message.
    Text,
    /// `0x2`: the first frame of a binary message.
    Binary,
    /// `0x8`: connection close.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
}

impl OpCode {
    /// The opcode for the low four bits of a frame's first byte; `None` for reserved values.
    pub(crate) fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The four-bit wire value.
    pub(crate) fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong.
    pub(crate) fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Largest payload of a control frame (RFC 6455 §5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

/// Writes a server→client (unmasked) frame header.
pub(crate) fn encode_header(
    out: &mut BytesMut,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: usize,
) {
    let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
    out.reserve(10);
    out.put_u8(b0);
    if payload_len < 126 {
        // Cannot truncate: checked just above.
        out.put_u8(payload_len as u8);
    } else if let Ok(len) = u16::try_from(payload_len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(payload_len as u64);
    }
}

/// XORs `buf` with `key`, where `buf[0]` is payload byte number `offset` of the frame (only
/// `offset % 4` matters), so a payload can be unmasked in pieces as it arrives.
///
/// Works a `u64` at a time (native-endian loads and stores of the 8-byte repeated key, which the
/// compiler vectorises), bytes only at the tail.
pub(crate) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let phase = offset % 4;
    let key = [
        key[phase],
        key[(phase + 1) % 4],
        key[(phase + 2) % 4],
        key[(phase + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // Each chunk is 8 bytes (a multiple of 4), so the tail starts at key phase 0.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Builds a close frame payload: the code (big-endian) and the reason, truncated at a char
/// boundary so the payload fits a control frame (≤ 123 reason bytes).
pub(crate) fn close_payload(code: u16, reason: &str) -> BytesMut {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = BytesMut::with_capacity(2 + end);
    out.put_u16(code);
    out.put_slice(&reason.as_bytes()[..end]);
    out
}

/// Whether `code` may appear in a received close frame (RFC 6455 §7.4): 1000-1003, 1007-1014
/// and 3000-4999.
pub(crate) fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The first two bytes of a client frame, validated on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit (permessage-deflate's "compressed" flag).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The 7-bit length field (126 and 127 announce extended lengths).
    pub len7: u8,
}

/// A complete client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// Payload length.
    pub len: u64,
    /// Masking key.
    pub mask: [u8; 4],
    /// Header size on the wire (2 to 14 bytes).
    pub header_len: usize,
}

/// Validates the first two bytes of a client frame: the checks that need no reader state
/// (reserved bits and opcodes, masking, fragmented control frames). Errors are 1002.
pub(crate) fn parse_start(b0: u8, b1: u8) -> Result<Start, CloseError> {
    if b0 & 0x30 != 0 {
        return Err(CloseError::protocol("reserved bits set"));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(CloseError::protocol("reserved opcode"))?;
    if b1 & 0x80 == 0 {
        return Err(CloseError::protocol("unmasked client frame"));
    }
    let start = Start {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode,
        len7: b1 & 0x7F,
    };
    if opcode.is_control() && !start.fin {
        return Err(CloseError::protocol("fragmented control frame"));
    }
    Ok(start)
}

/// Reads the rest of the header whose first two bytes gave `start`; `Ok(None)` until `buf`
/// holds it all. Non-minimal length encodings are accepted; a 64-bit length with the most
/// significant bit set, or a control frame longer than 125 bytes, is a 1002.
pub(crate) fn parse_header(buf: &[u8], start: Start) -> Result<Option<Header>, CloseError> {
    let ext = match start.len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + 4;
    let Some(head) = buf.get(..header_len) else {
        return Ok(None);
    };
    let len = match ext {
        2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(CloseError::protocol("frame length out of range"));
            }
            len
        }
        _ => u64::from(start.len7),
    };
    if start.opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(CloseError::protocol("control frame too long"));
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&head[2 + ext..header_len]);
    Ok(Some(Header {
        fin: start.fin,
        rsv1: start.rsv1,
        opcode: start.opcode,
        len,
        mask,
        header_len,
    }))
}

/// Test helpers: a client (masking) frame encoder.
#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// How a test frame writes its length.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum LenForm {
        /// The shortest encoding.
        Minimal,
        /// Always the 16-bit form (126).
        Ext16,
        /// Always the 64-bit form (127).
        Ext64,
    }

    /// The key every test frame is masked with.
    pub(crate) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame; `b0` is the whole first byte (FIN, RSV bits, opcode).
    pub(crate) fn raw_frame(b0: u8, payload: &[u8], form: LenForm) -> Vec<u8> {
        let mut out = vec![b0];
        let len = payload.len();
        match form {
            LenForm::Minimal if len < 126 => out.push(0x80 | len as u8),
            LenForm::Minimal | LenForm::Ext16 if len <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&KEY);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], KEY, 0);
        out
    }

    /// A masked client frame with the minimal length encoding.
    pub(crate) fn frame(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
        raw_frame(b0, payload, LenForm::Minimal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn opcode_bits_round_trip() {
        for bits in 0..16u8 {
            match OpCode::from_bits(bits) {
                Some(op) => assert_eq!(op.bits(), bits),
                None => assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits}"),
            }
        }
        assert!(OpCode::Ping.is_control() && !OpCode::Continuation.is_control());
    }

    #[test]
    fn header_lengths() {
        let cases: [(usize, &[u8]); 6] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xff, 0xff]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
            (1 << 32, &[0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (len, want) in cases {
            let mut out = BytesMut::new();
            encode_header(&mut out, true, false, OpCode::Text, len);
            assert_eq!(&out[..], want, "len {len}");
        }
    }

    #[test]
    fn header_bits() {
        let mut out = BytesMut::new();
        encode_header(&mut out, false, true, OpCode::Binary, 3);
        encode_header(&mut out, true, false, OpCode::Close, 2);
        encode_header(&mut out, false, false, OpCode::Continuation, 0);
        encode_header(&mut out, true, false, OpCode::Pong, 0);
        assert_eq!(&out[..], [0x42, 3, 0x88, 2, 0x00, 0, 0x8A, 0]);
    }

    #[test]
    fn mask_matches_naive_for_all_offsets_and_lengths() {
        let key = [0x01, 0x80, 0x7f, 0xfe];
        for len in 0..70 {
            for offset in 0..9 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                naive_mask(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                apply_mask(&mut fast, key, offset);
                assert_eq!(fast, data, "mask is an involution");
            }
        }
    }

    #[test]
    fn mask_in_pieces_equals_mask_whole() {
        let key = [9, 8, 7, 6];
        let data: Vec<u8> = (0..200u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in [1, 3, 5, 8, 13, 100, 199] {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split {split}");
        }
    }

    #[test]
    fn close_payload_encodes_and_truncates() {
        assert_eq!(&close_payload(1000, "")[..], [0x03, 0xe8]);
        assert_eq!(&close_payload(1001, "bye")[..], b"\x03\xe9bye");
        let ascii = "a".repeat(300);
        assert_eq!(close_payload(1000, &ascii).len(), 125);
        // 'é' is two bytes: 61 of them are 122 bytes, the 62nd would straddle byte 123.
        let accents = "é".repeat(100);
        let p = close_payload(1011, &accents);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        // Four-byte chars: 30 fit in 120 bytes.
        let p = close_payload(1011, &"😀".repeat(40));
        assert_eq!(p.len(), 2 + 120);
    }

    #[test]
    fn close_codes() {
        for code in [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999] {
            assert!(close_code_valid(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!close_code_valid(code), "{code}");
        }
    }

    #[test]
    fn parse_lengths_minimal_and_not() {
        let start = parse_start(0x82, 0xFE).unwrap();
        let buf = [0x82, 0xFE, 0, 5, 1, 2, 3, 4];
        assert_eq!(parse_header(&buf[..7], start), Ok(None));
        let h = parse_header(&buf, start).unwrap().unwrap();
        assert_eq!((h.len, h.header_len, h.mask), (5, 8, [1, 2, 3, 4]));

        let start = parse_start(0x82, 0xFF).unwrap();
        let mut buf = vec![0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4];
        let h = parse_header(&buf, start).unwrap().unwrap();
        assert_eq!((h.len, h.header_len), (5, 14));
        buf[2] = 0x80;
        assert_eq!(parse_header(&buf, start).unwrap_err().code, 1002);
        buf[2] = 0x7F;
        assert_eq!(
            parse_header(&buf, start).unwrap().unwrap().len,
            (0x7F << 56) | 5
        );
    }

    #[test]
    fn control_length_checked_after_decoding() {
        let long = [0x89, 0xFE, 0, 126, 1, 2, 3, 4];
        let start = parse_start(long[0], long[1]).unwrap();
        assert_eq!(parse_header(&long, start).unwrap_err().code, 1002);
        let short = [0x89, 0xFE, 0, 125, 1, 2, 3, 4];
        let start = parse_start(short[0], short[1]).unwrap();
        assert_eq!(parse_header(&short, start).unwrap().unwrap().len, 125);
    }

    #[test]
    fn parse_start_rules() {
        let err = |b0, b1| parse_start(b0, b1).unwrap_err().code;
        assert_eq!(err(0x81, 0x05), 1002, "unmasked");
        assert_eq!(err(0xA1, 0x85), 1002, "rsv2");
        assert_eq!(err(0x91, 0x85), 1002, "rsv3");
        assert_eq!(err(0x09, 0x80), 1002, "fragmented ping");
        assert!(parse_start(0x89, 0x80 | 125).is_ok());
        assert!(parse_start(0xC1, 0x80).is_ok(), "rsv1 is the reader's call");
    }
}
