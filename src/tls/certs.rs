//! Compiling TLS Secrets into the immutable certificate set handshakes use.
//!
//! Pure: [`CertSet::compile`] reads a snapshot and the previous set and does
//! no I/O, so every rule (SNI matching, conflicts, fallback to the last good
//! certificate) is tested with tables. The cache thread calls it when an
//! Ingress with TLS entries changes, and [`CertSet::update_secrets`], which
//! touches only the hosts a changed Secret serves, when only Secrets did;
//! parsing happens only when a Secret's data actually changed, and a
//! rejected Secret is logged and counted once per version, not once per
//! compile.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use imbl::OrdMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{der, Error, SECRET_ERRORS};
use crate::base64;
use crate::store::Snapshot;
use crate::kube::objects::{Ingress, ObjectKey, Secret, SmolStr};
use crate::hostname::{normalize_host, wildcard_parent};

/// One served certificate, as metrics and the route inspector see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEntry {
    /// The host pattern (`shop.example.com`, `*.example.com`); `None` for the
    /// `--default-ssl-certificate`, served when nothing else matches.
    pub host: Option<String>,
    /// The Secret the certificate came from.
    pub secret: ObjectKey,
    /// The leaf certificate's notAfter, Unix seconds.
    pub not_after: i64,
}

/// A parsed, usable certificate with its key.
struct ServedCert {
    secret: ObjectKey,
    certified: Arc<CertifiedKey>,
    not_after: i64,
}

/// What the last compile made of one referenced Secret; kept so the next
/// compile can skip unchanged Secrets and fall back to the last good one.
#[derive(Clone)]
enum SecretState {
    Good { source: Arc<Secret>, cert: Arc<ServedCert> },
    Rejected { source: Arc<Secret>, error: Error, last_good: Option<Arc<ServedCert>> },
    Missing,
}

impl SecretState {
    fn last_good(&self) -> Option<&Arc<ServedCert>> {
        match self {
            SecretState::Good { cert, .. } => Some(cert),
            SecretState::Rejected { last_good, .. } => last_good.as_ref(),
            SecretState::Missing => None,
        }
    }

    /// The certificate a host pattern this Secret claims gets. A Secret
    /// rejected before it ever parsed leaves the host what it had in
    /// `previous`: a bad Secret never takes a working certificate away.
    fn serves(&self, pattern: &str, previous: &CertSet) -> Option<Arc<ServedCert>> {
        match self {
            SecretState::Rejected { last_good: None, .. } => previous.by_pattern.get(pattern).cloned(),
            state => state.last_good().cloned(),
        }
    }

    fn source(&self) -> Option<&Arc<Secret>> {
        match self {
            SecretState::Good { source, .. } | SecretState::Rejected { source, .. } => Some(source),
            SecretState::Missing => None,
        }
    }
}

/// Certificates by host, compiled by the cache thread and read by the SNI
/// resolver on every handshake. The maps are persistent (`imbl`), so a
/// Secret change makes the next set by copying only the paths to the hosts
/// that Secret serves; the rest is shared with the set in service.
#[derive(Default, Clone)]
pub struct CertSet {
    /// Host pattern (`shop.example.com`, `*.example.com`) → certificate,
    /// in pattern order.
    by_pattern: OrdMap<String, Arc<ServedCert>>,
    default: Option<Arc<ServedCert>>,
    secrets: OrdMap<ObjectKey, SecretState>,
    /// The host patterns each Secret claims by the conflict rule: what a
    /// change to that Secret alone touches. Only an Ingress change alters
    /// it, so sets made by [`CertSet::update_secrets`] share it.
    claimed: Arc<HashMap<ObjectKey, Vec<String>>>,
}

impl std::fmt::Debug for CertSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSet").field("entries", &self.entries().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// The Ingress that claimed a host first by the conflict rule, and its Secret.
struct Claim<'a> {
    /// Oldest wins: creationTimestamp, then namespace, then name.
    age: (&'a str, &'a str, &'a str),
    secret: ObjectKey,
}

impl CertSet {
    /// Compiles the certificates the served Ingresses name. `previous` is the
    /// set in service: unchanged Secrets are reused without parsing, and a
    /// Secret that stopped parsing keeps its last good certificate in service.
    pub fn compile(snapshot: &Snapshot, served: &[&Ingress], default_cert: Option<&ObjectKey>, previous: &CertSet) -> CertSet {
        let claims = claim_hosts(served);
        let mut loader = Loader { provider: None };
        let mut secrets = OrdMap::new();
        for key in claims.values().map(|claim| &claim.secret).chain(default_cert) {
            if !secrets.contains_key(key) {
                let state = loader.load(key, snapshot.secrets.get(key), previous.secrets.get(key));
                secrets.insert(key.clone(), state);
            }
        }

        let mut by_pattern = OrdMap::new();
        let mut claimed: HashMap<ObjectKey, Vec<String>> = HashMap::new();
        for (pattern, claim) in claims {
            if let Some(cert) = secrets.get(&claim.secret).and_then(|state| state.serves(&pattern, previous)) {
                by_pattern.insert(pattern.clone(), cert);
            }
            claimed.entry(claim.secret).or_default().push(pattern);
        }
        let default = default_cert.and_then(|key| secrets.get(key)).and_then(SecretState::last_good).cloned();
        CertSet { by_pattern, default, secrets, claimed: Arc::new(claimed) }
    }

    /// The set for `snapshot` when only the Secrets in `changed` may differ
    /// from what `self` was compiled from: no Ingress with TLS entries and
    /// not `default_cert` changed, so every host keeps its claimant and only
    /// the hosts a changed Secret claims are looked at. Equal to
    /// [`CertSet::compile`] with `self` as the previous set.
    pub fn update_secrets<'k>(&self, snapshot: &Snapshot, changed: impl IntoIterator<Item = &'k ObjectKey>, default_cert: Option<&ObjectKey>) -> CertSet {
        let mut loader = Loader { provider: None };
        let mut set = self.clone();
        for key in changed {
            let Some(previous) = self.secrets.get(key) else { continue };
            let state = loader.load(key, snapshot.secrets.get(key), Some(previous));
            for pattern in self.claimed.get(key).into_iter().flatten() {
                match state.serves(pattern, self) {
                    Some(cert) => set.by_pattern.insert(pattern.clone(), cert),
                    None => set.by_pattern.remove(pattern),
                };
            }
            if default_cert == Some(key) {
                set.default = state.last_good().cloned();
            }
            set.secrets.insert(key.clone(), state);
        }
        set
    }

    /// Whether this set was compiled from (or looked for) the Secret `key`.
    pub fn names(&self, key: &ObjectKey) -> bool {
        self.secrets.contains_key(key)
    }

    /// The certificate for a handshake: exact host, then a wildcard one label
    /// deep, then the default certificate. `None` fails the handshake.
    pub fn resolve(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = server_name.map(normalize_host).and_then(|name| {
            // A handshake costs far more than these allocations.
            self.by_pattern.get(&name).or_else(|| self.by_pattern.get(&format!("*.{}", wildcard_parent(&name)?)))
        });
        by_name.or(self.default.as_ref()).map(|cert| Arc::clone(&cert.certified))
    }

    /// Every served certificate, hosts in order, the default last.
    pub fn entries(&self) -> impl Iterator<Item = CertEntry> + '_ {
        let hosts = self.by_pattern.iter().map(|(pattern, cert)| (Some(pattern.clone()), cert));
        hosts.chain(self.default.iter().map(|cert| (None, cert))).map(|(host, cert)| CertEntry { host, secret: cert.secret.clone(), not_after: cert.not_after })
    }

    /// Referenced Secrets whose current version is unusable, and why.
    pub fn rejected(&self) -> impl Iterator<Item = (&ObjectKey, &Error)> {
        self.secrets.iter().filter_map(|(key, state)| match state {
            SecretState::Rejected { error, .. } => Some((key, error)),
            _ => None,
        })
    }
}

/// Host pattern → the Secret that serves it, by the oldest-Ingress-wins rule.
fn claim_hosts<'a>(served: &[&'a Ingress]) -> BTreeMap<String, Claim<'a>> {
    let mut claims: BTreeMap<String, Claim<'a>> = BTreeMap::new();
    for ingress in served {
        let meta = &ingress.metadata;
        let age = (meta.creation_timestamp.as_str(), meta.namespace.as_str(), meta.name.as_str());
        for tls in &ingress.spec.tls {
            let Some(secret_name) = tls.secret_name.as_deref().filter(|name| !name.is_empty()) else { continue };
            let secret = ObjectKey::new(&meta.namespace, secret_name);
            // An entry without hosts covers the hosts of this Ingress's rules.
            let hosts: Vec<&str> = if tls.hosts.is_empty() {
                ingress.spec.rules.iter().filter_map(|rule| rule.host.as_deref()).collect()
            } else {
                tls.hosts.iter().map(SmolStr::as_str).collect()
            };
            for host in hosts {
                let pattern = normalize_host(host);
                if pattern.is_empty() {
                    continue;
                }
                match claims.entry(pattern) {
                    Entry::Vacant(slot) => {
                        slot.insert(Claim { age, secret: secret.clone() });
                    }
                    Entry::Occupied(mut slot) if age < slot.get().age => {
                        if slot.get().secret != secret {
                            log::debug!("tls: host {} takes Secret {secret} from older-named {}", slot.key(), slot.get().secret);
                        }
                        slot.insert(Claim { age, secret: secret.clone() });
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
    }
    claims
}

/// Parses Secrets, creating the crypto provider only when one needs parsing.
struct Loader {
    provider: Option<CryptoProvider>,
}

impl Loader {
    fn load(&mut self, key: &ObjectKey, secret: Option<&Arc<Secret>>, previous: Option<&SecretState>) -> SecretState {
        let Some(secret) = secret else {
            if !matches!(previous, Some(SecretState::Missing)) {
                log::warn!("tls: Secret {key} is referenced but does not exist; its hosts get the default certificate if any");
            }
            return SecretState::Missing;
        };
        if let Some(previous) = previous {
            if previous.source().is_some_and(|source| same_tls_data(source, secret)) {
                return previous.clone();
            }
        }
        let provider = self.provider.get_or_insert_with(rustls::crypto::ring::default_provider);
        match parse_secret(secret, provider) {
            Ok((certified, not_after)) => {
                log::info!("tls: loaded certificate from Secret {key}");
                let cert = Arc::new(ServedCert { secret: key.clone(), certified: Arc::new(certified), not_after });
                SecretState::Good { source: Arc::clone(secret), cert }
            }
            Err(error) => {
                SECRET_ERRORS.fetch_add(1, Ordering::Relaxed);
                let last_good = previous.and_then(SecretState::last_good).cloned();
                let keeping = if last_good.is_some() { "keeping its last good certificate" } else { "its hosts keep what they had" };
                log::warn!("tls: rejected Secret {key} (resourceVersion {}): {error}; {keeping}", secret.metadata.resource_version);
                SecretState::Rejected { source: Arc::clone(secret), error, last_good }
            }
        }
    }
}

fn same_tls_data(a: &Secret, b: &Secret) -> bool {
    a.data.get("tls.crt") == b.data.get("tls.crt") && a.data.get("tls.key") == b.data.get("tls.key")
}

/// Decodes and checks one Secret: the chain, the key, and that they belong together.
fn parse_secret(secret: &Secret, provider: &CryptoProvider) -> Result<(CertifiedKey, i64), Error> {
    let decode = |name: &'static str| -> Result<Vec<u8>, Error> {
        Ok(base64::decode(secret.data.get(name).ok_or(Error::MissingData(name))?)?)
    };
    let chain = parse_chain(&decode("tls.crt")?)?;
    let key = parse_key(&decode("tls.key")?)?;
    certified_key(chain, key, provider)
}

/// Every PEM `CERTIFICATE` block, leaf first.
pub fn parse_chain(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Certificate(pem_error(&error)))?;
    if chain.is_empty() {
        return Err(Error::Certificate("no PEM CERTIFICATE block".into()));
    }
    Ok(chain)
}

/// The first private key block: `RSA PRIVATE KEY` (PKCS#1), `PRIVATE KEY`
/// (PKCS#8) or `EC PRIVATE KEY` (SEC1).
pub fn parse_key(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|error| Error::Key(pem_error(&error)))
}

/// A PEM error described without echoing input, which may be key material.
fn pem_error(error: &pem::Error) -> String {
    match error {
        pem::Error::NoItemsFound => "no PEM block of the expected type".into(),
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".into(),
        _ => "malformed PEM".into(),
    }
}

/// Loads the key, checks it against the leaf certificate, and reads the leaf's expiry.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, i64), Error> {
    let leaf = chain.first().ok_or_else(|| Error::Certificate("no certificate".into()))?;
    let not_after = der::not_after(leaf.as_ref())?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|_| {
        Error::Key("not an RSA, ECDSA (P-256, P-384) or Ed25519 key in PKCS#1, PKCS#8 or SEC1 form".into())
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok((certified, not_after)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::KeyMismatch),
        Err(other) => Err(Error::Certificate(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use fakeapi::certs::base64;

    use super::*;
    use crate::kube::objects::{IngressRule, IngressSpec, IngressTls, ObjectMeta};

    /// A 2048-bit RSA key made with `openssl genpkey` for these tests only
    /// (ring cannot generate RSA keys); PKCS#1 is derived from it below.
    const RSA_PKCS8: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCJRbkpJO695qq4
j+N+6dBVYKY3d0CadWogmmVk2DFChx3vSXY5/Ee4rL96BCfV6YvJsB/8lDu1Qy79
Kcp2OGuApso4CLPivkvBZrjr3WqtgnIP8TYrERT5WuMq2MnYZW09XrmSCOgYMXM8
ii3ZmeOsK2fnUv4E0WYZmKTk8TfLIuODX7Oab8EMp/3xcKId5cp2Zh82Zxu7i6RV
y562DtJa8TMZe+DojLSNRogoO7tAoUmyB4o4XaFssQ5Wair7oZgLkjQPBhkRIfos
zNIAvvQGRqthu0zIRgjajZq0lL03xyZP/ndn1JVB1YI7FRfERWjK7LNtj4siNkAA
Fpp3rvnLAgMBAAECggEAEeDWUkEApRP/RSVcXEGohA4f59ZswBEtvsxNC1rK457E
a89WCgxM7QT2tTYIWChgL+bz64oE0sFKw+cm+smzWqCecrjTcOMW67vstq9yPuHf
6Cqiwu4pHKbVMlXkx/3Bwf3tzlLBo7EBEK/wc8hCqkBG+o5JDiiVkxzZ0QWHnjme
rLuUVO9BJV+wckdMlZxrSZiEXc06JnDBMgNRS5txaFCbdOuTYA8OWKITmBcQ3Jok
aPg2WBMACsaejFCaUbRgns+v2J+rtVPO+tYCxX7/BRxN9oiZCJPAG8VAyHuYbihd
nqH/fMJjY8pbkxNjiewDQN7Lh1PjlNlzAelY/QIYxQKBgQDBPJZ+GNWfKBXXBU7W
zKt8zC+9llZiYJENZf+Iy2qTCbA0Vjf8e1ZAaj4lK+uKWUSku9vJqdRd6Mbb6H8k
NjYrX6iBSFbnVMqny7iloXxRjaS3Z/Oq/SZ9yv6kvn2gmwmd/TqgEOGoiHu+iLlM
oIK5M5gByBIBA22IQSDofv5zZQKBgQC128P5MO9adGOrUyIsWGkrZez2DEpAOeKX
dBu0xgOEiDbo2j0HuT7W4Y/Lo5dKF6JvsRhDQUfNRuukU9H2uyQuznwhpg1YbQpt
VolpC+dHAZkeOY6KG/WMXWSQn/xcdV3RiOXRpfuLBLqk1ifUCcFrxFFl1kaFby1/
GDECFd6dbwKBgQCFFMQUXegpb4LzDg3I8zYbgchTSol9wUHEt31waZ+hWmfG86Yl
NZAmVsUr9n6GTopu5Y4t6c9/SYRDCXEesFNINd4oA3kOYqAbRbuKHpgu1l0djvMK
zMPImJgdP6/nfz71VuQcPuQanLyUcTckpdrBz92dRHvZxNGXqDsQw/1b3QKBgHUd
UyZ+UhZBkBI8FmzSfuAY4rJNld+op3j7qAAR6SAHjL0GFnmL3aEKX803y+1GLTCa
rtJZDwFuo8AOzs+DEzkldqFAy6Vfi3CAYzuIE+gRamchj973RHmhh2rv7NgqKUIQ
VFhf+Q88+2m+FKYjpjFdm0Hm7UFvKLCJhr4eEV/3AoGAeK3f/hzV74kBoQjwmzcj
hIpwEpwqqLQmV5UWTBspvuUcToIz5fLZYpvmim5V5pdo9v4j2U4K/2LOpxy6pPeY
R6GkFi8BDTfdXtMnRQC6ey9DGket2tfRjX4SJaX3tRpZMqRCfAwD4HjwGB//Xzib
F05fe82Kx5mO/KFhw62MWYA=
-----END PRIVATE KEY-----
";

    fn pem(label: &str, der: &[u8]) -> String {
        let body = base64(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).expect("ascii")).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    /// The private key inside a PKCS#8 PrivateKeyInfo: PKCS#1 for RSA, SEC1 for EC.
    fn inner_key(pkcs8: &[u8]) -> Vec<u8> {
        let (info, _) = der::expect(pkcs8, 0x30, "PrivateKeyInfo").expect("sequence");
        let (_version, rest) = der::expect(info, 0x02, "version").expect("version");
        let (_algorithm, rest) = der::expect(rest, 0x30, "algorithm").expect("algorithm");
        let (key, _) = der::expect(rest, 0x04, "privateKey").expect("octets");
        key.to_vec()
    }

    struct Issued {
        cert_pem: String,
        key_pem: String,
        leaf_der: Vec<u8>,
    }

    fn issue_with(hosts: &[&str], key: &rcgen::KeyPair, not_after_year: i32) -> Issued {
        let mut params = rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).expect("params");
        params.not_after = rcgen::date_time_ymd(not_after_year, 6, 30);
        let cert = params.self_signed(key).expect("self-signed");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), leaf_der: cert.der().to_vec() }
    }

    fn issue(hosts: &[&str]) -> Issued {
        issue_with(hosts, &rcgen::KeyPair::generate().expect("key"), 2040)
    }

    fn secret(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> Arc<Secret> {
        let mut secret = Secret {
            metadata: ObjectMeta { namespace: namespace.into(), name: name.into(), ..ObjectMeta::default() },
            type_: "kubernetes.io/tls".into(),
            ..Secret::default()
        };
        secret.data.insert("tls.crt", base64(cert_pem.as_bytes()));
        secret.data.insert("tls.key", base64(key_pem.as_bytes()));
        Arc::new(secret)
    }

    fn ingress(namespace: &str, name: &str, created: &str, tls: &[(&[&str], &str)], rule_hosts: &[&str]) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                namespace: namespace.into(),
                name: name.into(),
                creation_timestamp: created.into(),
                ..ObjectMeta::default()
            },
            spec: IngressSpec {
                tls: tls
                    .iter()
                    .map(|(hosts, secret)| IngressTls {
                        hosts: hosts.iter().map(SmolStr::new).collect(),
                        secret_name: Some(SmolStr::new(secret)),
                    })
                    .collect(),
                rules: rule_hosts.iter().map(|h| IngressRule { host: Some(SmolStr::new(h)), http: None }).collect(),
                ..IngressSpec::default()
            },
            status: None,
        }
    }

    fn snapshot(secrets: &[&Arc<Secret>]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for secret in secrets {
            snapshot.insert(crate::kube::Object::Secret(Secret::clone(secret)));
        }
        snapshot
    }

    fn leaf(set: &CertSet, name: Option<&str>) -> Option<Vec<u8>> {
        set.resolve(name).map(|certified| certified.cert[0].to_vec())
    }

    fn load(cert_pem: &str, key_pem: &str) -> Result<(CertifiedKey, i64), Error> {
        let provider = rustls::crypto::ring::default_provider();
        certified_key(parse_chain(cert_pem.as_bytes())?, parse_key(key_pem.as_bytes())?, &provider)
    }

    #[test]
    fn keys_load_in_pkcs1_pkcs8_and_sec1_form() {
        let rsa = rcgen::KeyPair::from_pem(RSA_PKCS8).expect("rsa fixture");
        let rsa_issued = issue_with(&["rsa.example.com"], &rsa, 2035);
        let pkcs1 = pem("RSA PRIVATE KEY", &inner_key(&rsa.serialize_der()));
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        let ec_issued = issue_with(&["ec.example.com"], &ec, 2036);
        let sec1 = pem("EC PRIVATE KEY", &inner_key(&ec.serialize_der()));
        let p384 = issue_with(&["p384.example.com"], &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384"), 2037);
        let ed25519 = issue_with(&["ed.example.com"], &rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519"), 2038);

        for (form, issued, key_pem, label) in [
            ("PKCS#1 RSA", &rsa_issued, pkcs1.as_str(), "RSA PRIVATE KEY"),
            ("PKCS#8 RSA", &rsa_issued, rsa_issued.key_pem.as_str(), "PRIVATE KEY"),
            ("SEC1 P-256", &ec_issued, sec1.as_str(), "EC PRIVATE KEY"),
            ("PKCS#8 P-256", &ec_issued, ec_issued.key_pem.as_str(), "PRIVATE KEY"),
            ("PKCS#8 P-384", &p384, p384.key_pem.as_str(), "PRIVATE KEY"),
            ("PKCS#8 Ed25519", &ed25519, ed25519.key_pem.as_str(), "PRIVATE KEY"),
        ] {
            assert!(key_pem.starts_with(&format!("-----BEGIN {label}-----")), "{form}");
            let (certified, not_after) = load(&issued.cert_pem, key_pem).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(certified.cert[0].as_ref(), issued.leaf_der.as_slice(), "{form}");
            assert_eq!(not_after, der::not_after(&issued.leaf_der).expect("not after"), "{form}");
        }
        assert_eq!(der::not_after(&rsa_issued.leaf_der), Ok(2_066_774_400), "2035-06-30T00:00:00Z");
    }

    #[test]
    fn full_chains_load_leaf_first() {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["chain.example.com".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf");
        let (certified, _) = load(&format!("{}{}", leaf.pem(), ca.pem()), &leaf_key.serialize_pem()).expect("chain loads");
        assert_eq!(certified.cert.len(), 2);
        assert_eq!(certified.cert[0].as_ref(), leaf.der().as_ref());
        assert_eq!(certified.cert[1].as_ref(), ca.der().as_ref());
    }

    #[test]
    fn unusable_secrets_say_why() {
        let a = issue(&["a.example.com"]);
        let b = issue(&["b.example.com"]);
        assert_eq!(load(&a.cert_pem, &b.key_pem).err(), Some(Error::KeyMismatch));
        assert!(matches!(load("", &a.key_pem), Err(Error::Certificate(_))));
        assert!(matches!(load(&a.cert_pem, ""), Err(Error::Key(_))));
        assert!(matches!(load(&a.cert_pem, &pem("PRIVATE KEY", b"not a key")), Err(Error::Key(_))));
        assert!(matches!(load(&pem("CERTIFICATE", b"\x30\x03\x02\x01\x01"), &a.key_pem), Err(Error::Der(_))));
        assert!(matches!(load("-----BEGIN CERTIFICATE-----\nAAAA\n", &a.key_pem), Err(Error::Certificate(_))));

        let provider = rustls::crypto::ring::default_provider();
        let mut bad = Secret::clone(&secret("ns", "s", &a.cert_pem, &a.key_pem));
        bad.data.insert("tls.key", "not*base64");
        assert_eq!(parse_secret(&bad, &provider).err(), Some(Error::Base64 { offset: 3 }));
        bad.data.remove("tls.key");
        assert_eq!(parse_secret(&bad, &provider).err(), Some(Error::MissingData("tls.key")));
        let key_line = a.key_pem.lines().nth(1).expect("a base64 line");
        for damaged in [a.key_pem.replace("-----END", "-----FIN"), a.key_pem.replacen('\n', &format!(" {key_line}\n"), 1)] {
            let message = load(&a.cert_pem, &damaged).expect_err("damaged key is refused").to_string();
            assert!(!message.contains(key_line), "messages never carry key material: {message}");
        }
    }

    #[test]
    fn sni_picks_exact_then_wildcard_one_label_deep_then_default() {
        let shop = issue(&["shop.example.com"]);
        let wild = issue(&["*.example.com"]);
        let fallback = issue(&["fallback.invalid"]);
        let shop_secret = secret("web", "shop-tls", &shop.cert_pem, &shop.key_pem);
        let wild_secret = secret("web", "wild-tls", &wild.cert_pem, &wild.key_pem);
        let default_secret = secret("infra", "default-tls", &fallback.cert_pem, &fallback.key_pem);
        let snapshot = snapshot(&[&shop_secret, &wild_secret, &default_secret]);
        let ing = ingress("web", "site", "2024-01-01T00:00:00Z", &[(&["Shop.Example.com."], "shop-tls"), (&["*.example.com"], "wild-tls")], &[]);

        let set = CertSet::compile(&snapshot, &[&ing], None, &CertSet::default());
        assert_eq!(leaf(&set, Some("shop.example.com")), Some(shop.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("SHOP.EXAMPLE.COM")), Some(shop.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("api.example.com")), Some(wild.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("a.b.example.com")), None, "a wildcard covers one label");
        assert_eq!(leaf(&set, Some("example.com")), None);
        assert_eq!(leaf(&set, None), None);

        let default_key = default_secret.metadata.key();
        let set = CertSet::compile(&snapshot, &[&ing], Some(&default_key), &set);
        assert_eq!(leaf(&set, Some("a.b.example.com")), Some(fallback.leaf_der.clone()));
        assert_eq!(leaf(&set, None), Some(fallback.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("shop.example.com")), Some(shop.leaf_der.clone()));

        let not_after = der::not_after(&shop.leaf_der).expect("not after");
        assert_eq!(
            set.entries().collect::<Vec<_>>(),
            [
                CertEntry { host: Some("*.example.com".into()), secret: ObjectKey::new("web", "wild-tls"), not_after },
                CertEntry { host: Some("shop.example.com".into()), secret: ObjectKey::new("web", "shop-tls"), not_after },
                CertEntry { host: None, secret: default_key, not_after },
            ]
        );
    }

    #[test]
    fn metrics_show_seconds_until_expiry_per_host() {
        let shop = issue(&["shop.example.com"]);
        let s = secret("web", "shop-tls", &shop.cert_pem, &shop.key_pem);
        let ing = ingress("web", "site", "2024-01-01T00:00:00Z", &[(&["shop.example.com"], "shop-tls")], &[]);
        let default_key = s.metadata.key();
        let set = CertSet::compile(&snapshot(&[&s]), &[&ing], Some(&default_key), &CertSet::default());
        let not_after = der::not_after(&shop.leaf_der).expect("not after");
        let mut text = String::new();
        crate::tls::write_metrics(&set, not_after - 3_600, &mut text);
        assert!(text.contains("ingressd_tls_certificate_expiry_seconds{host=\"shop.example.com\",secret=\"web/shop-tls\"} 3600\n"), "{text}");
        assert!(text.contains("ingressd_tls_certificate_expiry_seconds{host=\"\",secret=\"web/shop-tls\"} 3600\n"), "{text}");
        assert!(text.contains("# TYPE ingressd_tls_secret_errors_total counter\ningressd_tls_secret_errors_total "), "{text}");
        assert!(!text.contains("PRIVATE"), "no key material in metrics");
    }

    #[test]
    fn tls_entry_without_hosts_covers_the_rule_hosts() {
        let cert = issue(&["a.example.com", "b.example.com"]);
        let s = secret("ns", "both", &cert.cert_pem, &cert.key_pem);
        let ing = ingress("ns", "i", "2024-01-01T00:00:00Z", &[(&[], "both")], &["a.example.com", "B.example.com"]);
        let set = CertSet::compile(&snapshot(&[&s]), &[&ing], None, &CertSet::default());
        assert_eq!(leaf(&set, Some("a.example.com")), Some(cert.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("b.example.com")), Some(cert.leaf_der.clone()));
        assert_eq!(leaf(&set, Some("c.example.com")), None);
    }

    #[test]
    fn the_oldest_ingress_wins_a_host() {
        let old = issue(&["x.example.com"]);
        let new = issue(&["x.example.com"]);
        let old_secret = secret("b", "old", &old.cert_pem, &old.key_pem);
        let new_secret = secret("a", "new", &new.cert_pem, &new.key_pem);
        let snapshot = snapshot(&[&old_secret, &new_secret]);
        let older = ingress("b", "z", "2023-01-01T00:00:00Z", &[(&["x.example.com"], "old")], &[]);
        let newer = ingress("a", "a", "2024-01-01T00:00:00Z", &[(&["x.example.com"], "new")], &[]);
        for order in [[&older, &newer], [&newer, &older]] {
            let set = CertSet::compile(&snapshot, &order, None, &CertSet::default());
            assert_eq!(leaf(&set, Some("x.example.com")), Some(old.leaf_der.clone()));
        }
        // Same timestamp: namespace, then name, decides.
        let tie_b = ingress("b", "a", "2023-01-01T00:00:00Z", &[(&["x.example.com"], "old")], &[]);
        let tie_a = ingress("a", "z", "2023-01-01T00:00:00Z", &[(&["x.example.com"], "new")], &[]);
        let set = CertSet::compile(&snapshot, &[&tie_b, &tie_a], None, &CertSet::default());
        assert_eq!(leaf(&set, Some("x.example.com")), Some(new.leaf_der.clone()));
    }

    #[test]
    fn creation_rotation_deletion_and_rejection_follow_the_secret() {
        let first = issue(&["r.example.com"]);
        let second = issue(&["r.example.com"]);
        let ing = ingress("ns", "i", "2024-01-01T00:00:00Z", &[(&["r.example.com"], "r")], &[]);
        let before = CertSet::compile(&snapshot(&[]), &[&ing], None, &CertSet::default());
        assert_eq!(leaf(&before, Some("r.example.com")), None, "the Secret does not exist yet");
        let v1 = secret("ns", "r", &first.cert_pem, &first.key_pem);
        let set1 = CertSet::compile(&snapshot(&[&v1]), &[&ing], None, &before);
        assert_eq!(leaf(&set1, Some("r.example.com")), Some(first.leaf_der.clone()));

        // Unchanged data (even in a new object) is not parsed again.
        let v1_again = secret("ns", "r", &first.cert_pem, &first.key_pem);
        let set1b = CertSet::compile(&snapshot(&[&v1_again]), &[&ing], None, &set1);
        let (a, b) = (set1.resolve(Some("r.example.com")).expect("a"), set1b.resolve(Some("r.example.com")).expect("b"));
        assert!(Arc::ptr_eq(&a, &b));

        let v2 = secret("ns", "r", &second.cert_pem, &second.key_pem);
        let set2 = CertSet::compile(&snapshot(&[&v2]), &[&ing], None, &set1b);
        assert_eq!(leaf(&set2, Some("r.example.com")), Some(second.leaf_der.clone()));

        let errors_before = crate::tls::secret_errors_total();
        let broken = secret("ns", "r", &second.cert_pem, &first.key_pem);
        let set3 = CertSet::compile(&snapshot(&[&broken]), &[&ing], None, &set2);
        assert_eq!(leaf(&set3, Some("r.example.com")), Some(second.leaf_der.clone()), "last good stays");
        assert_eq!(set3.rejected().collect::<Vec<_>>(), vec![(&ObjectKey::new("ns", "r"), &Error::KeyMismatch)]);
        assert!(crate::tls::secret_errors_total() > errors_before);
        let set4 = CertSet::compile(&snapshot(&[&broken]), &[&ing], None, &set3);
        assert_eq!(leaf(&set4, Some("r.example.com")), Some(second.leaf_der.clone()), "and keeps staying");

        let set5 = CertSet::compile(&snapshot(&[]), &[&ing], None, &set4);
        assert_eq!(leaf(&set5, Some("r.example.com")), None, "a deleted Secret is no longer served");
        assert_eq!(set5.entries().count(), 0);
    }

    #[test]
    fn a_host_moved_to_a_broken_secret_keeps_its_certificate() {
        let good = issue(&["m.example.com"]);
        let other = issue(&["m.example.com"]);
        let good_secret = secret("ns", "good", &good.cert_pem, &good.key_pem);
        let broken_secret = secret("ns", "broken", &other.cert_pem, &good.key_pem);
        let snapshot = snapshot(&[&good_secret, &broken_secret]);
        let before = ingress("ns", "i", "2024-01-01T00:00:00Z", &[(&["m.example.com"], "good")], &[]);
        let after = ingress("ns", "i", "2024-01-01T00:00:00Z", &[(&["m.example.com"], "broken")], &[]);
        let set1 = CertSet::compile(&snapshot, &[&before], None, &CertSet::default());
        let set2 = CertSet::compile(&snapshot, &[&after], None, &set1);
        assert_eq!(leaf(&set2, Some("m.example.com")), Some(good.leaf_der.clone()));
        let set3 = CertSet::compile(&snapshot, &[&after], None, &set2);
        assert_eq!(leaf(&set3, Some("m.example.com")), Some(good.leaf_der.clone()));
    }
}
