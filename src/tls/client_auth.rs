//! Client certificates per host (`auth-tls-*`), chosen from the ClientHello.
//!
//! [`ClientAuthSet::compile`] (cache thread) reads the served Ingresses and
//! the CA Secrets they name (a change to CA Secrets alone reloads only their
//! hosts, [`ClientAuthSet::update_secrets`]): for each host, the oldest Ingress on it that
//! sets `auth-tls-secret` decides, as ingress-nginx's server block does. The
//! TLS stream looks the SNI name up, asks for a certificate with that host's
//! CA names as hints, and right after the handshake verifies the chain
//! itself (webpki, with `auth-tls-verify-depth`) into a [`ClientSession`]
//! that every request of the connection sees. The handshake itself never
//! fails over a certificate, so the request phase can answer as nginx does
//! (400, or a redirect to `auth-tls-error-page`), and `optional_no_ca` can
//! pass an unverified certificate on.
//!
//! Fails closed: a host whose CA Secret is missing, foreign or unusable
//! answers 403 to every request (ingress-nginx's `return 403` for an
//! `AuthTLSError`), and asks for no certificate.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::dn;
use crate::base64;
use crate::annotations::client_cert::{self, ClientCertSettings, VerifyClient};
use crate::kube::objects::{Ingress, ObjectKey};
use crate::hostname::{normalize_host, wildcard_parent};
use crate::store::Snapshot;
use crate::uri_escape::escape_uri_component;

/// One host's client-certificate settings with its CA, compiled.
#[derive(Debug)]
pub struct ClientAuth {
    pub settings: ClientCertSettings,
    /// The Ingress whose annotations these are.
    pub ingress: ObjectKey,
    /// The CA bundle, or why the host cannot verify (it then answers 403).
    ca: Result<Ca, String>,
    /// `auth-tls-match-cn`, compiled.
    match_cn: Option<regex::Regex>,
    /// The handshake configuration, built on first use from the listener's.
    handshake: OnceLock<Option<Arc<ServerConfig>>>,
}

#[derive(Debug)]
struct Ca {
    ders: Vec<CertificateDer<'static>>,
    roots: RootCertStore,
}

impl PartialEq for ClientAuth {
    /// Equal settings and the same CA certificates: a recompile that changed
    /// nothing keeps established connections valid.
    fn eq(&self, other: &ClientAuth) -> bool {
        let ca = match (&self.ca, &other.ca) {
            (Ok(a), Ok(b)) => a.ders == b.ders,
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        ca && self.settings == other.settings && self.ingress == other.ingress
    }
}

/// What verifying a connection's client certificate found, as nginx's
/// `$ssl_client_verify` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Success,
    /// The reason, e.g. `UnknownIssuer`.
    Failed(String),
    /// No certificate was sent (or none was asked for).
    None,
}

impl Verification {
    /// The `ssl-client-verify` header value.
    pub fn header_value(&self) -> String {
        match self {
            Verification::Success => "SUCCESS".into(),
            Verification::Failed(why) => format!("FAILED:{why}"),
            Verification::None => "NONE".into(),
        }
    }
}

/// What a TLS connection to a client-certificate host carries to its requests.
#[derive(Debug)]
pub struct ClientSession {
    /// The SNI name, normalized (lower case); `None` without SNI.
    pub server_name: Option<String>,
    /// The settings the handshake ran with.
    pub auth: Arc<ClientAuth>,
    pub verification: Verification,
    /// RFC 2253, empty without a certificate.
    pub subject_dn: String,
    pub issuer_dn: String,
    /// The client's certificate as URL-escaped PEM (nginx's
    /// `$ssl_client_escaped_cert`), when the host passes it upstream.
    pub escaped_pem: Option<String>,
}

/// `auth-tls-match-cn` as a regular expression, bounded in size like every
/// pattern an Ingress brings.
fn compile_match_cn(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(crate::annotations::REGEX_SIZE_LIMIT)
        .build()
        .map_err(|_| "auth-tls-match-cn is not a valid regular expression, or compiles too large".to_string())
}

impl ClientAuth {
    /// Compiles one Ingress's settings with its CA Secret from `snapshot`.
    fn new(settings: ClientCertSettings, ingress: ObjectKey, snapshot: &Snapshot) -> ClientAuth {
        let match_cn = settings.match_cn.as_deref().map(compile_match_cn).transpose();
        let ca = settings.secret.clone().and_then(|secret| load_ca(snapshot, &secret)).and_then(|ca| match_cn.as_ref().map(|_| ca).map_err(Clone::clone));
        let match_cn = match_cn.unwrap_or_default();
        if let Err(why) = &ca {
            log::warn!("ingress {ingress}: client certificates cannot be verified: {why}; its hosts answer 403");
        }
        ClientAuth { settings, ingress, ca, match_cn, handshake: OnceLock::new() }
    }

    /// Whether requests can be served at all (the CA is usable).
    pub fn usable(&self) -> bool {
        self.ca.is_ok()
    }

    /// Whether a subject DN passes `auth-tls-match-cn` (unanchored, as
    /// nginx's `$ssl_client_s_dn !~`); true without one.
    pub fn subject_allowed(&self, subject_dn: &str) -> bool {
        self.match_cn.as_ref().is_none_or(|pattern| pattern.is_match(subject_dn))
    }

    /// The configuration to finish a handshake with: `base`'s, asking for a
    /// certificate with this host's CA names as hints. `None` when no
    /// certificate is to be asked for (`off`, or an unusable CA).
    pub fn handshake_config(&self, base: &ServerConfig) -> Option<Arc<ServerConfig>> {
        self.handshake
            .get_or_init(|| {
                let ca = self.ca.as_ref().ok().filter(|_| self.settings.verify != VerifyClient::Off)?;
                let provider = Arc::clone(base.crypto_provider());
                let verifier = RequestCertificate { hints: ca.roots.subjects(), provider: Arc::clone(&provider) };
                let built = ServerConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                    .map_err(|error| log::error!("tls: client-auth configuration for {}: {error}", self.ingress))
                    .ok()?
                    .with_client_cert_verifier(Arc::new(verifier))
                    .with_cert_resolver(Arc::clone(&base.cert_resolver));
                let mut config = built;
                config.alpn_protocols = base.alpn_protocols.clone();
                Some(Arc::new(config))
            })
            .clone()
    }

    /// Verifies the chain a client presented (leaf first) against the CA
    /// and the depth; `None` when it presented none.
    pub fn verify(&self, chain: Option<&[CertificateDer<'_>]>, provider: &CryptoProvider, now: UnixTime) -> Verification {
        let Some((leaf, intermediates)) = chain.and_then(<[_]>::split_first) else { return Verification::None };
        let Ok(ca) = &self.ca else { return Verification::Failed("no usable CA".into()) };
        let leaf = match webpki::EndEntityCert::try_from(leaf) {
            Ok(leaf) => leaf,
            Err(error) => return Verification::Failed(format!("{error:?}")),
        };
        let depth = self.settings.depth as usize;
        let within_depth = |path: &webpki::VerifiedPath<'_>| {
            if path.intermediate_certificates().count() < depth {
                Ok(())
            } else {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
        };
        let verified = leaf.verify_for_usage(
            provider.signature_verification_algorithms.all,
            &ca.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&within_depth),
        );
        match verified {
            Ok(_) => Verification::Success,
            Err(error) => Verification::Failed(format!("{error:?}")),
        }
    }

    /// The session a finished handshake gives its requests.
    pub fn session(self: &Arc<ClientAuth>, server_name: Option<&str>, chain: Option<&[CertificateDer<'_>]>, provider: &CryptoProvider) -> ClientSession {
        let verification = self.verify(chain, provider, UnixTime::now());
        let leaf = chain.and_then(<[_]>::first);
        let (issuer_dn, subject_dn) = leaf.and_then(|leaf| dn::issuer_and_subject(leaf).ok()).unwrap_or_default();
        let escaped_pem = leaf.filter(|_| self.settings.pass_certificate).map(|leaf| escape_uri_component(&pem(leaf)));
        ClientSession { server_name: server_name.map(normalize_host), auth: Arc::clone(self), verification, subject_dn, issuer_dn, escaped_pem }
    }
}

/// Asks for a certificate without judging it during the handshake: the
/// chain is verified right after, with the depth limit webpki's rustls
/// verifier lacks. The signature that proves the client holds the key is
/// checked here, as always.
#[derive(Debug)]
struct RequestCertificate {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Client-certificate settings by host, compiled by the cache thread.
#[derive(Debug, Default, Clone)]
pub struct ClientAuthSet {
    exact: HashMap<String, Arc<ClientAuth>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<ClientAuth>>,
    /// The CA Secrets this set was compiled from: a change to one of them
    /// compiles it again (only its hosts).
    secrets: BTreeSet<ObjectKey>,
}

impl ClientAuthSet {
    /// Compiles the settings of `served` (oldest first) with the CA Secrets
    /// in `snapshot`. Unchanged hosts keep `previous`'s entries, so their
    /// connections stay valid.
    pub fn compile(snapshot: &Snapshot, served: &[&Ingress], previous: &ClientAuthSet) -> ClientAuthSet {
        let mut set = ClientAuthSet::default();
        for ingress in served {
            let mut problems = Vec::new();
            let Some(settings) = client_cert::from_annotations(&ingress.metadata.annotations, &ingress.metadata.namespace, &mut problems) else { continue };
            let key = ingress.metadata.key();
            for problem in problems {
                log::warn!("ingress {key}: {problem}");
            }
            if let Ok(secret) = &settings.secret {
                set.secrets.insert(secret.clone());
            }
            let compiled = Arc::new(ClientAuth::new(settings, key, snapshot));
            for rule in &ingress.spec.rules {
                let pattern = normalize_host(rule.host.as_deref().unwrap_or(""));
                let (map, earlier_map, name) = match pattern.strip_prefix("*.") {
                    Some(parent) => (&mut set.wildcard, &previous.wildcard, parent.to_string()),
                    None if pattern.is_empty() => continue,
                    None => (&mut set.exact, &previous.exact, pattern),
                };
                // An older Ingress may have decided this host already.
                if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(name) {
                    let earlier = earlier_map.get(slot.key()).filter(|earlier| ***earlier == *compiled);
                    slot.insert(Arc::clone(earlier.unwrap_or(&compiled)));
                }
            }
        }
        set
    }

    /// The set for `snapshot` when only the Secrets in `changed` may differ
    /// from what `self` was compiled from (no served Ingress with TLS entries
    /// or client-certificate annotations changed): every host keeps its
    /// Ingress and settings, and only the hosts whose CA Secret changed load
    /// it again. Equal to [`ClientAuthSet::compile`] with `self` as previous.
    pub fn update_secrets<'k>(&self, snapshot: &Snapshot, changed: impl IntoIterator<Item = &'k ObjectKey>) -> ClientAuthSet {
        let changed: BTreeSet<&ObjectKey> = changed.into_iter().filter(|key| self.secrets.contains(*key)).collect();
        let mut set = self.clone();
        // By Ingress, so its hosts share one compiled entry, as a compile makes them.
        let mut recompiled: HashMap<ObjectKey, Arc<ClientAuth>> = HashMap::new();
        for auth in set.exact.values_mut().chain(set.wildcard.values_mut()) {
            if !auth.settings.secret.as_ref().is_ok_and(|key| changed.contains(key)) {
                continue;
            }
            let compiled = recompiled.entry(auth.ingress.clone()).or_insert_with(|| Arc::new(ClientAuth::new(auth.settings.clone(), auth.ingress.clone(), snapshot)));
            if **compiled != **auth {
                *auth = Arc::clone(compiled);
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    /// Whether a change to this Secret may change the set.
    pub fn names_secret(&self, key: &ObjectKey) -> bool {
        self.secrets.contains(key)
    }

    /// The settings for a handshake's SNI name: exact host, then a wildcard
    /// one label deep.
    pub fn for_server_name(&self, server_name: Option<&str>) -> Option<&Arc<ClientAuth>> {
        let name = normalize_host(server_name?);
        self.exact.get(&name).or_else(|| self.wildcard.get(wildcard_parent(&name)?))
    }

    /// The settings for a route's host as compiled (`shop.example.com`,
    /// `*.example.com`, or "" for rules without host).
    pub fn for_route_host(&self, host: &str) -> Option<&Arc<ClientAuth>> {
        if self.is_empty() {
            return None;
        }
        match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.get(parent),
            None => self.exact.get(host),
        }
    }
}

/// The CA certificates under `ca.crt` of a Secret.
fn load_ca(snapshot: &Snapshot, key: &ObjectKey) -> Result<Ca, String> {
    let secret = snapshot.secret(key).ok_or_else(|| format!("auth-tls-secret {key} does not exist (or is not readable)"))?;
    let encoded = secret.data.get("ca.crt").ok_or_else(|| format!("auth-tls-secret {key} has no ca.crt"))?;
    let pem = base64::decode(encoded).map_err(|error| format!("auth-tls-secret {key}: ca.crt: {error}"))?;
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(ders.iter().cloned());
    if added == 0 {
        return Err(format!("auth-tls-secret {key}: ca.crt holds no usable CA certificate"));
    }
    Ok(Ca { ders, roots })
}

/// A DER certificate as PEM, 64 characters a line.
fn pem(der: &[u8]) -> String {
    let encoded = base64::encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::compile_match_cn;

    #[test]
    fn match_cn_is_a_bounded_regular_expression() {
        assert!(compile_match_cn("CN=(admin|ops)").is_ok_and(|p| p.is_match("CN=ops,O=example")));
        assert!(compile_match_cn("CN=(admin").is_err());
        assert!(compile_match_cn("(?:a{1000}){1000}").is_err(), "an Ingress cannot make the cache thread build a huge automaton");
    }
}
