//! Just enough DER to read a certificate's notAfter.
//!
//! Expiry is a metric, not a trust decision (clients verify certificates), so
//! this walks the fixed prefix of X.509 (Certificate → tbsCertificate →
//! validity) without an ASN.1 library. Every length is checked against the
//! input; malformed input is an error, never a panic.

use super::Error;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One tag-length-value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
}

/// Splits the first element off `input`; returns it and what follows.
pub fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Error> {
    let (&tag, rest) = input.split_first().ok_or(Error::Der("element expected, input ended"))?;
    if tag & 0x1f == 0x1f {
        return Err(Error::Der("high tag numbers are not used in certificates"));
    }
    let (&first, rest) = rest.split_first().ok_or(Error::Der("length expected, input ended"))?;
    let (length, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            if rest.len() < count {
                return Err(Error::Der("length bytes run past the input"));
            }
            let (bytes, rest) = rest.split_at(count);
            if bytes[0] == 0 || (count == 1 && bytes[0] < 0x80) {
                return Err(Error::Der("length is not in its shortest form"));
            }
            let length = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, rest)
        }
        _ => return Err(Error::Der("indefinite or oversized length")),
    };
    if rest.len() < length {
        return Err(Error::Der("element runs past the input"));
    }
    let (contents, rest) = rest.split_at(length);
    Ok((Tlv { tag, contents }, rest))
}

/// Reads one element that must carry `tag`.
pub fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<(&'a [u8], &'a [u8]), Error> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag {
        return Err(Error::Der(what));
    }
    Ok((tlv.contents, rest))
}

/// The certificate's notAfter as Unix seconds.
pub fn not_after(certificate: &[u8]) -> Result<i64, Error> {
    let (certificate, trailing) = expect(certificate, SEQUENCE, "Certificate is not a SEQUENCE")?;
    if !trailing.is_empty() {
        return Err(Error::Der("bytes after the Certificate"));
    }
    let (tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let (first, mut rest) = read_tlv(tbs)?;
    if first.tag == CONTEXT_0_CONSTRUCTED {
        // The explicit version comes before the serial number in v2/v3 certificates.
        let (serial, after) = read_tlv(rest)?;
        if serial.tag != INTEGER {
            return Err(Error::Der("serialNumber is not an INTEGER"));
        }
        rest = after;
    } else if first.tag != INTEGER {
        return Err(Error::Der("serialNumber is not an INTEGER"));
    }
    let (_signature, rest) = expect(rest, SEQUENCE, "signature is not an AlgorithmIdentifier")?;
    let (_issuer, rest) = expect(rest, SEQUENCE, "issuer is not a Name")?;
    let (validity, _) = expect(rest, SEQUENCE, "validity is not a SEQUENCE")?;
    let (_not_before, rest) = read_tlv(validity)?;
    let (not_after, _) = read_tlv(rest)?;
    parse_time(not_after)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the only
/// forms RFC 5280 allows in certificates.
fn parse_time(time: Tlv<'_>) -> Result<i64, Error> {
    let text = time.contents;
    let (year, rest) = match time.tag {
        UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
        UTC_TIME | GENERALIZED_TIME => return Err(Error::Der("time is not in the RFC 5280 form")),
        _ => return Err(Error::Der("notAfter is not a time")),
    };
    if rest[10] != b'Z' {
        return Err(Error::Der("time is not in UTC"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return Err(Error::Der("time is out of range"));
    }
    Ok(crate::civil::days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, Error> {
    text.iter().try_fold(0i64, |acc, b| match b {
        b'0'..=b'9' => Ok(acc * 10 + i64::from(b - b'0')),
        _ => Err(Error::Der("time has a non-digit")),
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    /// A certificate skeleton with the given validity times (signature and
    /// key are irrelevant to the walk).
    fn certificate(with_version: bool, not_before: Vec<u8>, not_after: Vec<u8>) -> Vec<u8> {
        let mut tbs = Vec::new();
        if with_version {
            tbs.extend(tlv(0xa0, &tlv(INTEGER, &[2])));
        }
        tbs.extend(tlv(INTEGER, &[0x01, 0x23]));
        tbs.extend(tlv(SEQUENCE, &tlv(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[not_before, not_after].concat()));
        tbs.extend(tlv(SEQUENCE, &[0u8; 200]));
        let mut cert = tlv(SEQUENCE, &tbs);
        cert.extend(tlv(SEQUENCE, &[]));
        cert.extend(tlv(0x03, &[0, 1, 2]));
        tlv(SEQUENCE, &cert)
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        for (tag, text, unix) in [
            (UTC_TIME, "700101000000Z", 0),
            (UTC_TIME, "491231235959Z", 2_524_607_999),
            (UTC_TIME, "500101000000Z", -631_152_000),
            (UTC_TIME, "240229120000Z", 1_709_208_000),
            (GENERALIZED_TIME, "20500101000000Z", 2_524_608_000),
            (GENERALIZED_TIME, "99991231235959Z", 253_402_300_799),
        ] {
            let cert = certificate(true, tlv(UTC_TIME, b"200101000000Z"), tlv(tag, text.as_bytes()));
            assert_eq!(not_after(&cert), Ok(unix), "{text}");
        }
        let v1 = certificate(false, tlv(UTC_TIME, b"200101000000Z"), tlv(UTC_TIME, b"700101000001Z"));
        assert_eq!(not_after(&v1), Ok(1));
    }

    #[test]
    fn refuses_malformed_certificates() {
        let good = certificate(true, tlv(UTC_TIME, b"200101000000Z"), tlv(UTC_TIME, b"300101000000Z"));
        assert!(not_after(&good).is_ok());
        for cut in 0..good.len() {
            assert!(not_after(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(not_after(&trailing).is_err());
        for bad_time in [
            tlv(UTC_TIME, b"300101000000"),
            tlv(UTC_TIME, b"300101000000+"),
            tlv(UTC_TIME, b"301301000000Z"),
            tlv(UTC_TIME, b"230229000000Z"),
            tlv(UTC_TIME, b"300101240000Z"),
            tlv(UTC_TIME, b"3001010000a0Z"),
            tlv(GENERALIZED_TIME, b"300101000000Z"),
            tlv(INTEGER, b"300101000000Z"),
        ] {
            let cert = certificate(true, tlv(UTC_TIME, b"200101000000Z"), bad_time.clone());
            assert!(not_after(&cert).is_err(), "{bad_time:?}");
        }
        assert!(not_after(&[0x30, 0x80, 0, 0]).is_err(), "indefinite length");
        assert!(not_after(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err(), "long form for a short length");
        assert!(not_after(&[0x30, 0x88, 1, 2, 3, 4, 5, 6, 7, 8]).is_err(), "oversized length");
    }

    /// Bit flips and truncations of a valid certificate, and random bytes:
    /// the walk returns errors, never panics. (A deterministic stand-in for a
    /// fuzz target.)
    #[test]
    fn mutated_input_never_panics() {
        let good = certificate(true, tlv(UTC_TIME, b"200101000000Z"), tlv(GENERALIZED_TIME, b"20500101000000Z"));
        let mut rng = crate::test_rng::Xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
        for _ in 0..20_000 {
            let mut input = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % input.len();
                input[at] ^= 1 << (next() % 8);
            }
            input.truncate((next() as usize) % (input.len() + 1));
            let _ = not_after(&input);
            let random: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = not_after(&random);
        }
    }
}
