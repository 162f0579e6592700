//! Certificates for tests and demos: a CA, leaves it issues, self-signed leaves, and TLS
//! Secrets built from them.
//!
//! Generation failures panic: these are test helpers whose inputs come from the test itself.
//! Loading a CA from files ([`Ca::from_pem`]) reports errors instead, because the files come
//! from outside (the binary's `--ca-cert`/`--ca-key`).

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};

/// Why a CA could not be loaded from PEM.
#[derive(Debug)]
pub enum CertError {
    /// The certificate PEM held no `CERTIFICATE` block or its DER was not a certificate whose
    /// subject this module can read back byte for byte.
    BadCertificate(String),
    /// The key PEM was not a private key that rcgen can sign with.
    BadKey(String),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::BadCertificate(why) => write!(f, "bad CA certificate: {why}"),
            CertError::BadKey(why) => write!(f, "bad CA key: {why}"),
        }
    }
}

impl std::error::Error for CertError {}

/// A certificate authority. Keeps PEM text rather than rcgen objects so it is cheap to clone
/// and can be written to files and loaded again by a restarted server.
#[derive(Clone)]
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    /// The subject exactly as it appears in `cert_pem`: issued certificates must carry these
    /// bytes as their issuer or chain building fails.
    subject: DistinguishedName,
}

/// The key is secret: never print it.
impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// Leaf first, then the CA that signed it (the full chain a server presents).
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate CA key");
        let subject = common_name_dn(common_name);
        let cert = ca_params(subject.clone()).self_signed(&key).expect("self-sign CA");
        Ca { cert_pem: cert.pem(), key_pem: key.serialize_pem(), subject }
    }

    /// Loads a CA written earlier (by [`Ca::cert_pem`]/[`Ca::key_pem`] or by another tool).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        KeyPair::from_pem(key_pem).map_err(|e| CertError::BadKey(e.to_string()))?;
        let der = pem_block(cert_pem, "CERTIFICATE")
            .ok_or_else(|| CertError::BadCertificate("no CERTIFICATE block".into()))?;
        let subject = der::certificate_subject(&der).map_err(CertError::BadCertificate)?;
        Ok(Ca { cert_pem: cert_pem.to_string(), key_pem: key_pem.to_string(), subject })
    }

    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Issues a server certificate. `sans` entries that parse as IP addresses become IP SANs,
    /// the rest DNS names (`*.example.com` allowed).
    pub fn issue(&self, common_name: &str, sans: &[&str]) -> Issued {
        let ca_key = KeyPair::from_pem(&self.key_pem).expect("CA key was validated on load");
        // rcgen takes the issuer's name and key identifier from a Certificate value; one
        // re-signed from the same subject and key describes the same issuer.
        let issuer = ca_params(self.subject.clone()).self_signed(&ca_key).expect("re-sign CA");
        let key = KeyPair::generate().expect("generate leaf key");
        let mut params = leaf_params(common_name, sans);
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &issuer, &ca_key).expect("sign leaf");
        let mut cert_pem = leaf.pem();
        cert_pem.push_str(&self.cert_pem);
        Issued { cert_pem, key_pem: key.serialize_pem() }
    }
}

/// A self-signed end-entity certificate (not a CA, so verifiers accept it as a leaf when it
/// is also their trust anchor).
pub fn self_signed(common_name: &str, sans: &[&str]) -> Issued {
    let key = KeyPair::generate().expect("generate key");
    let cert = leaf_params(common_name, sans).self_signed(&key).expect("self-sign");
    Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// A `v1` Secret of type `kubernetes.io/tls`, as `kubectl create secret tls` makes it.
pub fn tls_secret(namespace: &str, name: &str, issued: &Issued) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64(issued.cert_pem.as_bytes()),
            "tls.key": base64(issued.key_pem.as_bytes()),
        }
    })
}

/// Standard base64 with padding, the encoding of Secret `data` values.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not; `None` on any other byte.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(subject: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn leaf_params(common_name: &str, sans: &[&str]) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid subject alternative names");
    params.distinguished_name = common_name_dn(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// The DER inside the first PEM block with this label.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    base64_decode(&pem[start..stop])
}

/// Just enough DER to read a certificate's subject back into rcgen's form.
mod der {
    use super::{DistinguishedName, DnType, DnValue};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const EXPLICIT_VERSION: u8 = 0xA0;

    /// One TLV: (tag, contents, rest of input).
    fn read(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
        let (&tag, rest) = input.split_first().ok_or("truncated DER")?;
        let (&first, rest) = rest.split_first().ok_or("truncated DER")?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad DER length".into());
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err("truncated DER".into());
        }
        Ok((tag, &rest[..len], &rest[len..]))
    }

    fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
        let (tag, body, rest) = read(input)?;
        if tag != want {
            return Err(format!("expected DER tag {want:#x}, found {tag:#x}"));
        }
        Ok((body, rest))
    }

    pub(super) fn certificate_subject(cert: &[u8]) -> Result<DistinguishedName, String> {
        let (certificate, _) = expect(cert, SEQUENCE)?;
        let (tbs, _) = expect(certificate, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&EXPLICIT_VERSION) {
            rest = read(rest)?.2;
        }
        // serial, signature algorithm, issuer, validity
        for _ in 0..4 {
            rest = read(rest)?.2;
        }
        let (mut rdns, _) = expect(rest, SEQUENCE)?;
        let mut dn = DistinguishedName::new();
        while !rdns.is_empty() {
            let (set, next) = expect(rdns, SET)?;
            rdns = next;
            let (attribute, _) = expect(set, SEQUENCE)?;
            let (oid, value) = expect(attribute, OID)?;
            let (tag, value, _) = read(value)?;
            dn.push(dn_type(&decode_oid(oid)?), dn_value(tag, value)?);
        }
        Ok(dn)
    }

    fn decode_oid(bytes: &[u8]) -> Result<Vec<u64>, String> {
        let (&first, rest) = bytes.split_first().ok_or("empty OID")?;
        let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
        let mut acc = 0u64;
        for &b in rest {
            acc = (acc << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                arcs.push(acc);
                acc = 0;
            }
        }
        Ok(arcs)
    }

    fn dn_type(oid: &[u64]) -> DnType {
        match oid {
            [2, 5, 4, 3] => DnType::CommonName,
            [2, 5, 4, 6] => DnType::CountryName,
            [2, 5, 4, 7] => DnType::LocalityName,
            [2, 5, 4, 8] => DnType::StateOrProvinceName,
            [2, 5, 4, 10] => DnType::OrganizationName,
            [2, 5, 4, 11] => DnType::OrganizationalUnitName,
            other => DnType::CustomDnType(other.to_vec()),
        }
    }

    fn dn_value(tag: u8, bytes: &[u8]) -> Result<DnValue, String> {
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| "subject value is not text")?;
        let bad = |e: rcgen::Error| e.to_string();
        Ok(match tag {
            0x0C => DnValue::Utf8String(text),
            0x13 => DnValue::PrintableString(text.try_into().map_err(bad)?),
            0x16 => DnValue::Ia5String(text.try_into().map_err(bad)?),
            0x14 => DnValue::TeletexString(text.try_into().map_err(bad)?),
            other => return Err(format!("unsupported subject string type {other:#x}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_padding_length() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn reloaded_ca_reads_back_the_same_subject() {
        let ca = Ca::new("fakeapi test CA");
        let again = Ca::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.subject, ca.subject);
        assert!(Ca::from_pem("junk", &ca.key_pem()).is_err());
        assert!(Ca::from_pem(&ca.cert_pem(), "junk").is_err());
    }

    #[test]
    fn issued_chain_is_leaf_then_ca() {
        let ca = Ca::new("chain CA");
        let issued = ca.issue("web", &["web.example.com", "*.example.com", "127.0.0.1"]);
        assert_eq!(issued.cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(issued.cert_pem.ends_with(&ca.cert_pem()));
        assert!(issued.key_pem.contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn tls_secret_has_kubectl_shape() {
        let issued = self_signed("x", &["x.example"]);
        let secret = tls_secret("ns", "x-tls", &issued);
        assert_eq!(secret["type"], "kubernetes.io/tls");
        let crt = base64_decode(secret["data"]["tls.crt"].as_str().unwrap()).unwrap();
        assert_eq!(crt, issued.cert_pem.as_bytes());
    }
}
