//! Base64 (RFC 4648, standard alphabet) for Secret data as the API serves it,
//! and the encoder that writes a client certificate as PEM.
//!
//! Hand-written because a decoder is forty lines and the crate list is closed.
//! Strict where strictness costs nothing: bytes outside the alphabet, padding
//! in the middle, and non-zero trailing bits are refused, so a Secret that an
//! API server would never produce is reported instead of half-decoded.
//! Missing final padding is tolerated.

/// Where a text stops being base64: `offset` is the first bad byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64 {
    pub offset: usize,
}

impl std::fmt::Display for InvalidBase64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid base64 at byte {}", self.offset)
    }
}

impl std::error::Error for InvalidBase64 {}

/// The value of one alphabet byte, or `None` for anything else.
fn sextet(byte: u8) -> Option<u32> {
    match byte {
        b'A'..=b'Z' => Some(u32::from(byte - b'A')),
        b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes standard base64 with or without `=` padding.
pub fn decode(text: &str) -> Result<Vec<u8>, InvalidBase64> {
    let input = text.as_bytes();
    let unpadded = input.len() - input.iter().rev().take(2).take_while(|b| **b == b'=').count();
    let padding = input.len() - unpadded;
    if padding > 0 && input.len() % 4 != 0 {
        return Err(InvalidBase64 { offset: unpadded });
    }
    let body = &input[..unpadded];
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for (chunk_index, chunk) in body.chunks(4).enumerate() {
        let mut bits: u32 = 0;
        for (i, byte) in chunk.iter().enumerate() {
            let value = sextet(*byte).ok_or(InvalidBase64 { offset: chunk_index * 4 + i })?;
            bits |= value << (18 - 6 * i);
        }
        if chunk.len() == 1 {
            // Six bits cannot make a byte: the input was cut short.
            return Err(InvalidBase64 { offset: chunk_index * 4 });
        }
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        let produced = chunk.len() - 1;
        // The bits below the last whole byte must be zero in canonical base64.
        if produced < 3 && bytes[produced] != 0 {
            return Err(InvalidBase64 { offset: chunk_index * 4 + chunk.len() - 1 });
        }
        out.extend_from_slice(&bytes[..produced]);
    }
    Ok(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes standard base64 with `=` padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (i, b)| bits | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let sextet = (bits >> (18 - 6 * i)) as usize & 63;
            out.push(if i <= chunk.len() { char::from(ALPHABET[sextet]) } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_rfc_4648_vectors() {
        for (encoded, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zg", "f"),
            ("Zm8", "fo"),
        ] {
            assert_eq!(decode(encoded).as_deref(), Ok(plain.as_bytes()), "{encoded:?}");
        }
    }

    #[test]
    fn decodes_every_byte_value() {
        let all: Vec<u8> = (0..=255).collect();
        let encoded = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==";
        assert_eq!(decode(encoded), Ok(all.clone()));
        assert_eq!(encode(&all), encoded);
        for plain in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(decode(&encode(plain.as_bytes())).as_deref(), Ok(plain.as_bytes()));
        }
    }

    #[test]
    fn refuses_what_no_api_server_sends() {
        for (encoded, offset) in [
            ("Zm9v!mFy", 4),
            ("Zm9vY", 4),
            ("Zg=", 2),
            ("Z===", 1),
            ("Zm=v", 2),
            ("Zh==", 1),
            ("Zm9=", 2),
            ("Zm9v\nYmFy", 4),
            ("Zm9vYmFy====", 8),
        ] {
            assert_eq!(decode(encoded), Err(InvalidBase64 { offset }), "{encoded:?}");
        }
    }

    /// Random text over the alphabet, padding and junk: decoding returns a
    /// value or an error, never panics, and whatever decodes re-encodes to the
    /// same text (padded), so nothing is silently altered.
    #[test]
    fn random_input_never_panics_and_round_trips() {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n-_!";
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut rng = crate::test_rng::Xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let mut decoded_some = 0;
        for _ in 0..20_000 {
            let length = (next() % 24) as usize;
            let text: String = (0..length).map(|_| CHARS[(next() as usize) % CHARS.len()] as char).collect();
            if let Ok(bytes) = decode(&text) {
                decoded_some += 1;
                let mut encoded = String::new();
                for chunk in bytes.chunks(3) {
                    let bits = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
                    for i in 0..4 {
                        encoded.push(if i <= chunk.len() { ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
                    }
                }
                assert_eq!(encoded.trim_end_matches('='), text.trim_end_matches('='), "{text:?}");
            }
        }
        assert!(decoded_some > 100, "the generator should also produce valid input");
    }
}
