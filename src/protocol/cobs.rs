//! COBS (Consistent Overhead Byte Stuffing, Cheshire and Baker 1999) with `0x00` as the
//! frame delimiter: the byte stuffing of gongkai's own protocol.
//!
//! Owns the stuffing only; the packet layout and the CRC are `gongkai.rs`'s.
//!
//! Why COBS and not SLIP-style escaping: COBS adds at most one byte per 254 (0.4%) whatever
//! the data, while SLIP doubles every `C0`/`DB` byte — and packed 1-bit fonts are full of
//! `C0` (two lit pixels at a glyph's left edge), so a text frame could grow by tens of
//! percent. Zero bytes, which dark pixels make common, cost nothing in COBS: each becomes the
//! length code of the run before it.

/// The largest encoded size of `len` bytes, delimiters not counted.
pub fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Appends the COBS encoding of `data` to `out` (no delimiter).
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(max_encoded_len(data.len()));
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &byte in data {
        if byte == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(byte);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
}

/// Why a run of bytes between two delimiters is not valid COBS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CobsError {
    #[error("a zero byte inside a COBS frame")]
    Zero,
    #[error("a COBS length code runs past the end of the frame")]
    Truncated,
}

/// Decodes one COBS frame (without its delimiter) into `out`, which is cleared first.
/// `out` never grows beyond `encoded.len()` bytes.
pub fn decode_into(encoded: &[u8], out: &mut Vec<u8>) -> Result<(), CobsError> {
    out.clear();
    let mut i = 0;
    while i < encoded.len() {
        let code = encoded[i];
        if code == 0 {
            return Err(CobsError::Zero);
        }
        let end = i + code as usize;
        if end > encoded.len() {
            return Err(CobsError::Truncated);
        }
        let run = &encoded[i + 1..end];
        if run.contains(&0) {
            return Err(CobsError::Zero);
        }
        out.extend_from_slice(run);
        i = end;
        // A code below 0xFF stands for the data plus a zero, except at the very end.
        if code < 0xFF && i < encoded.len() {
            out.push(0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(data, &mut out);
        out
    }

    #[test]
    fn published_examples() {
        // The examples of the COBS paper and its common descriptions.
        assert_eq!(enc(&[]), [0x01]);
        assert_eq!(enc(&[0x00]), [0x01, 0x01]);
        assert_eq!(enc(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(
            enc(&[0x11, 0x22, 0x00, 0x33]),
            [0x03, 0x11, 0x22, 0x02, 0x33]
        );
        assert_eq!(
            enc(&[0x11, 0x00, 0x00, 0x00]),
            [0x02, 0x11, 0x01, 0x01, 0x01]
        );
        let ones: Vec<u8> = (1..=254).collect();
        let mut expected = vec![0xFF];
        expected.extend(&ones);
        expected.push(0x01);
        assert_eq!(enc(&ones), expected);
    }

    #[test]
    fn round_trip_and_overhead() {
        for len in [0usize, 1, 253, 254, 255, 508, 1000, 4096] {
            for fill in [0u8, 1, 0xFF] {
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i % 7) as u8)).collect();
                let encoded = enc(&data);
                assert!(!encoded.contains(&0));
                assert!(encoded.len() <= max_encoded_len(len), "{len}");
                let mut back = Vec::new();
                decode_into(&encoded, &mut back).unwrap();
                assert_eq!(back, data);
            }
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let mut out = Vec::new();
        assert_eq!(
            decode_into(&[0x05, 1, 2], &mut out),
            Err(CobsError::Truncated)
        );
        assert_eq!(decode_into(&[0x03, 1, 0], &mut out), Err(CobsError::Zero));
        assert_eq!(decode_into(&[0x00], &mut out), Err(CobsError::Zero));
    }
}
