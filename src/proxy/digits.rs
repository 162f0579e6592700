//! Numbers as ASCII digits without `core::fmt`: a `write!` of one number
//! walks a formatter and makes several virtual writes, about ten times the
//! work of the digits themselves, and the request path writes a few per
//! request (status, Content-Length, chunk sizes, ports, addresses).

/// Room for the digits of any `u64`.
pub(super) type DigitBuffer = [u8; 20];

/// `value` in decimal, written at the end of `buffer`.
pub(super) fn decimal(value: u64, buffer: &mut DigitBuffer) -> &[u8] {
    in_base::<10>(value, buffer)
}

/// `value` in lower-case hexadecimal (chunk sizes), written at the end of `buffer`.
pub(super) fn hex(value: u64, buffer: &mut DigitBuffer) -> &[u8] {
    in_base::<16>(value, buffer)
}

/// The base is a constant so that `%` and `/` compile to multiplications
/// and shifts, not a 64-bit division per digit.
fn in_base<const BASE: u64>(mut value: u64, buffer: &mut DigitBuffer) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = DIGITS[(value % BASE) as usize];
        value /= BASE;
        if value == 0 {
            return &buffer[start..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_the_formatter() {
        for value in [0, 1, 9, 10, 99, 100, 255, 256, 1023, 4096, 65_535, 1 << 32, u64::MAX - 1, u64::MAX] {
            let mut buffer = DigitBuffer::default();
            assert_eq!(decimal(value, &mut buffer), value.to_string().as_bytes());
            assert_eq!(hex(value, &mut buffer), format!("{value:x}").as_bytes());
        }
    }
}
