//! Percent-encoding of a URI component, as nginx writes
//! `$escaped_request_uri` (external auth's sign-in redirect) and
//! `$ssl_client_escaped_cert` (a client certificate passed upstream): the
//! receiving side decodes them with its stock URL decoder, so the bytes kept
//! as they are must be exactly the unreserved ones.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Percent-encodes everything but letters, digits and `-._~`.
pub fn escape_uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_uri_component;

    #[test]
    fn only_unreserved_bytes_stay_as_they_are() {
        for (text, escaped) in [
            ("", ""),
            ("azAZ09-._~", "azAZ09-._~"),
            ("/a b?c=d&e", "%2Fa%20b%3Fc%3Dd%26e"),
            ("-----BEGIN CERTIFICATE-----\nMII+/=\n", "-----BEGIN%20CERTIFICATE-----%0AMII%2B%2F%3D%0A"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(escape_uri_component(text), escaped, "{text:?}");
        }
    }
}
