//! A certificate's subject and issuer as RFC 2253 strings, as nginx's
//! `$ssl_client_s_dn` and `$ssl_client_i_dn` give them to upstreams in the
//! `ssl-client-subject-dn` and `ssl-client-issuer-dn` headers: last RDN
//! first, `CN=client,O=Example,C=DE`.
//!
//! Walks X.509 with [`super::der`]; the certificate was verified (or at
//! least parsed) by webpki first, but a malformed one still yields an error,
//! never a panic.

use super::der::{expect, read_tlv};
use super::Error;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;

/// The issuer and subject of a DER certificate, RFC 2253-formatted.
pub fn issuer_and_subject(certificate: &[u8]) -> Result<(String, String), Error> {
    let (certificate, _) = expect(certificate, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let (first, mut rest) = read_tlv(tbs)?;
    if first.tag == CONTEXT_0_CONSTRUCTED {
        // The version came first; the serial number follows.
        rest = read_tlv(rest)?.1;
    }
    let (_, rest) = expect(rest, SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    let (issuer, rest) = expect(rest, SEQUENCE, "issuer is not a SEQUENCE")?;
    let (_, rest) = expect(rest, SEQUENCE, "validity is not a SEQUENCE")?;
    let (subject, _) = expect(rest, SEQUENCE, "subject is not a SEQUENCE")?;
    Ok((format_name(issuer)?, format_name(subject)?))
}

/// The contents of a Name (a SEQUENCE of RDN SETs) as RFC 2253.
pub fn format_name(mut name: &[u8]) -> Result<String, Error> {
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (mut set, rest) = expect(name, SET, "RDN is not a SET")?;
        name = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (pair, rest) = expect(set, SEQUENCE, "attribute is not a SEQUENCE")?;
            set = rest;
            let (oid, value) = expect(pair, OID, "attribute type is not an OID")?;
            let (value, _) = read_tlv(value)?;
            let text = match std::str::from_utf8(value.contents) {
                // String types: UTF8String, PrintableString, IA5String, T61String.
                Ok(text) if matches!(value.tag, 0x0c | 0x13 | 0x16 | 0x14) => escape(text),
                _ => format!("#{}", hex(&[&[value.tag][..], &der_length(value.contents.len()), value.contents].concat())),
            };
            parts.push(format!("{}={text}", attribute_name(oid)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// OpenSSL's short names for the usual attribute types; others dotted.
fn attribute_name(oid: &[u8]) -> String {
    let known = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return dotted(oid),
    };
    known.to_string()
}

fn dotted(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else { return String::new() };
    let mut arcs = vec![u64::from(first / 40).min(2), u64::from(first) - 40 * u64::from(first / 40).min(2)];
    let mut value: u64 = 0;
    for &byte in rest {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// RFC 2253 escaping; control characters become `\XX` so a header never
/// carries a line break.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    out.push_str(&format!("\\{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn der_length(length: usize) -> Vec<u8> {
    match length {
        0..=0x7f => vec![length as u8],
        _ => {
            let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            [&[0x80 | bytes.len() as u8][..], &bytes].concat()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_issuers_read_as_nginx_prints_them() {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        ca_params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params.distinguished_name.push(rcgen::DnType::CommonName, " client#1+");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
        let (issuer, subject) = issuer_and_subject(cert.der()).expect("names");
        assert_eq!(issuer, "O=Example\\, Inc.,CN=Test CA");
        assert_eq!(subject, "CN=\\ client#1\\+,C=DE");
    }

    #[test]
    fn malformed_input_is_an_error() {
        for input in [&b""[..], b"\x30\x03\x30\x01", b"\x30\x80", b"\x31\x00"] {
            assert!(issuer_and_subject(input).is_err(), "{input:?}");
        }
        assert!(format_name(b"\x31\x05\x30\x03\x06\x01").is_err());
        assert_eq!(dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]), "1.3.6.1.4.1.311");
        assert_eq!(escape("a\r\nb"), "a\\0D\\0Ab");
    }
}
