//! The slices of Kubernetes objects ingressd reads.
//!
//! Every struct decodes only the fields ingressd acts on, and every field is
//! optional or defaulted: a newer API server that adds fields, or an object
//! that omits one, must never break decoding of the whole watch stream.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
pub use smol_str::SmolStr;

/// The annotation `kubectl apply` writes: a copy of the whole object as last
/// applied, often the largest part of it. ingressd never reads it, so it is
/// dropped while decoding rather than kept for every object.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A string map kept as a vector sorted by key: labels, annotations and a
/// Secret's data hold a handful of entries, where a `BTreeMap` allocates a
/// 500-byte node per map and a `String` carries a capacity word per value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringMap(Vec<(Box<str>, Box<str>)>);

impl StringMap {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok().map(|i| self.0[i].1.as_ref())
    }

    /// Sets `key`, replacing any value it had.
    pub fn insert(&mut self, key: impl Into<Box<str>>, value: impl Into<Box<str>>) {
        let (key, value) = (key.into(), value.into());
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Box<str>> {
        let i = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(self.0.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes a JSON object, leaving out the keys `keep` refuses; a key
    /// given twice keeps its last value, as a `BTreeMap` would.
    fn deserialize_filtered<'de, D: Deserializer<'de>>(deserializer: D, keep: fn(&str) -> bool) -> Result<StringMap, D::Error> {
        struct Visitor(fn(&str) -> bool);
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<StringMap, A::Error> {
                let mut map = StringMap::default();
                while let Some(key) = access.next_key::<String>()? {
                    if (self.0)(&key) {
                        let value: String = access.next_value()?;
                        map.insert(key, value);
                    } else {
                        access.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                map.0.shrink_to_fit();
                Ok(map)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<StringMap, E> {
                Ok(StringMap::default())
            }
        }
        deserializer.deserialize_any(Visitor(keep))
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> StringMap {
        let mut map = StringMap::default();
        for (key, value) in pairs {
            map.insert(key, value);
        }
        map
    }
}

impl Serialize for StringMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StringMap, D::Error> {
        StringMap::deserialize_filtered(deserializer, |_| true)
    }
}

/// A JSON array decoded from text gives serde no length up front, so its
/// `Vec` grows by doubling from four; kept objects hold exactly their items.
fn exact_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    let mut items = Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default();
    items.shrink_to_fit();
    Ok(items)
}

fn annotations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<StringMap, D::Error> {
    StringMap::deserialize_filtered(deserializer, |key| key != LAST_APPLIED_ANNOTATION)
}

/// `metadata` as far as routing, conflict resolution and resync need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: SmolStr,
    pub namespace: SmolStr,
    pub resource_version: SmolStr,
    /// RFC 3339 with second precision, so it orders correctly as a string.
    pub creation_timestamp: SmolStr,
    pub labels: StringMap,
    /// Without [`LAST_APPLIED_ANNOTATION`].
    #[serde(deserialize_with = "annotations")]
    pub annotations: StringMap,
}

impl ObjectMeta {
    /// The cache key of this object.
    pub fn key(&self) -> ObjectKey {
        ObjectKey { namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

/// `namespace/name`; cluster-scoped objects have an empty namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub namespace: SmolStr,
    pub name: SmolStr,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey { namespace: SmolStr::new(namespace), name: SmolStr::new(name) }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Gives the cache and the watcher one way to reach any kind's metadata.
pub trait KubeObject: for<'de> Deserialize<'de> + Clone + Send + Sync + 'static {
    fn metadata(&self) -> &ObjectMeta;
}

macro_rules! kube_object {
    ($($kind:ident),*) => {$(
        impl KubeObject for $kind {
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    )*};
}
kube_object!(Ingress, IngressClass, Service, EndpointSlice, Secret);

/// networking.k8s.io/v1 Ingress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ingress {
    pub metadata: ObjectMeta,
    pub spec: IngressSpec,
    /// Read so the status publisher writes only when the published
    /// addresses differ from what the API already holds.
    pub status: Option<IngressStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressStatus {
    pub load_balancer: IngressLoadBalancerStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressLoadBalancerStatus {
    #[serde(deserialize_with = "exact_vec")]
    pub ingress: Vec<IngressLoadBalancerIngress>,
}

/// One address where the Ingress is served: an IP or a DNS name. `ports` is
/// not decoded because ingressd never writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressLoadBalancerIngress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressSpec {
    pub ingress_class_name: Option<SmolStr>,
    pub default_backend: Option<IngressBackend>,
    #[serde(deserialize_with = "exact_vec")]
    pub tls: Vec<IngressTls>,
    #[serde(deserialize_with = "exact_vec")]
    pub rules: Vec<IngressRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressBackend {
    pub service: Option<IngressServiceBackend>,
    /// Kept opaque: resource backends are recognised only to be refused.
    pub resource: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressServiceBackend {
    pub name: SmolStr,
    pub port: ServiceBackendPort,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceBackendPort {
    pub name: Option<SmolStr>,
    pub number: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressTls {
    #[serde(deserialize_with = "exact_vec")]
    pub hosts: Vec<SmolStr>,
    pub secret_name: Option<SmolStr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressRule {
    pub host: Option<SmolStr>,
    pub http: Option<HttpIngressRuleValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpIngressRuleValue {
    #[serde(deserialize_with = "exact_vec")]
    pub paths: Vec<HttpIngressPath>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpIngressPath {
    pub path: Option<SmolStr>,
    /// `Exact`, `Prefix` or `ImplementationSpecific`; anything else is invalid.
    pub path_type: Option<SmolStr>,
    pub backend: IngressBackend,
}

/// networking.k8s.io/v1 IngressClass (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressClass {
    pub metadata: ObjectMeta,
    pub spec: IngressClassSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressClassSpec {
    pub controller: Option<String>,
}

/// v1 Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// `ClusterIP` (the default when absent), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: Option<SmolStr>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<SmolStr>,
    pub external_name: Option<SmolStr>,
    #[serde(deserialize_with = "exact_vec")]
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    pub name: Option<SmolStr>,
    pub port: i32,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<SmolStr>,
}

/// The API's `IntOrString`, used by `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

/// discovery.k8s.io/v1 EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSlice {
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: SmolStr,
    #[serde(deserialize_with = "exact_vec")]
    pub endpoints: Vec<Endpoint>,
    #[serde(deserialize_with = "exact_vec")]
    pub ports: Vec<EndpointPort>,
}

impl EndpointSlice {
    /// The Service a slice belongs to, from the label the EndpointSlice controller sets.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata.labels.get("kubernetes.io/service-name")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    #[serde(deserialize_with = "exact_vec")]
    pub addresses: Vec<SmolStr>,
    pub conditions: EndpointConditions,
}

/// Absent conditions mean "unknown", which the API says consumers treat as ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    pub name: Option<SmolStr>,
    pub port: Option<i32>,
    pub protocol: Option<SmolStr>,
}

/// v1 Secret: a `kubernetes.io/tls` one, or one an annotation names; no
/// other Secret is ever fetched.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Secret {
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub type_: SmolStr,
    /// Values are base64 as the API sends them; `tls.crt` and `tls.key` are decoded by `tls`.
    pub data: StringMap,
}

/// Names the data keys, never their values: a Secret printed in a log line
/// or a failed assertion must not carry a key or a password.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("type_", &self.type_)
            .field("data", &RedactedValues(&self.data))
            .finish()
    }
}

struct RedactedValues<'a>(&'a StringMap);

impl std::fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|key| (key, "<redacted>"))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_its_keys_never_its_values() {
        let mut secret = Secret { type_: "kubernetes.io/tls".into(), ..Secret::default() };
        secret.data.insert("tls.key", "c2VjcmV0LWtleQ==");
        secret.data.insert("auth", "dXNlcjpodW50ZXIy");
        let printed = format!("{secret:?}");
        assert!(printed.contains("\"tls.key\": \"<redacted>\"") && printed.contains("\"auth\""), "{printed}");
        assert!(!printed.contains("c2VjcmV0") && !printed.contains("dXNlcj"), "{printed}");
    }

    #[test]
    fn unknown_and_missing_fields_decode() {
        let ing: Ingress = serde_json::from_str(
            r#"{"kind":"Ingress","metadata":{"name":"a","namespace":"n","future":1},
                "spec":{"rules":[{"host":"x","http":{"paths":[{"path":"/","pathType":"Prefix",
                "backend":{"service":{"name":"s","port":{"number":80}}}}]}}],"newField":{}}}"#,
        )
        .expect("decodes");
        assert_eq!(ing.metadata.key(), ObjectKey::new("n", "a"));
        assert_eq!(ing.spec.rules[0].http.as_ref().map(|h| h.paths.len()), Some(1));
        let svc: Service = serde_json::from_str(r#"{"metadata":{"name":"s"}}"#).expect("decodes");
        assert!(svc.spec.ports.is_empty());
    }

    #[test]
    fn string_maps_keep_the_last_value_in_key_order_and_annotations_drop_last_applied() {
        let meta: ObjectMeta = serde_json::from_str(
            r#"{"labels":{"b":"2","a":"1","b":"3"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"big\":1}","x":"y"}}"#,
        )
        .expect("decodes");
        assert_eq!(meta.labels.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
        assert_eq!(meta.labels.get("b"), Some("3"));
        assert_eq!(meta.labels.get("c"), None);
        assert_eq!(meta.annotations.keys().collect::<Vec<_>>(), ["x"]);
        let round_trip: ObjectMeta = serde_json::from_value(serde_json::to_value(&meta).expect("encodes")).expect("decodes");
        assert_eq!(round_trip, meta);
        let empty: ObjectMeta = serde_json::from_str(r#"{"labels":null}"#).expect("null is empty");
        assert!(empty.labels.is_empty());
        assert!(serde_json::from_str::<ObjectMeta>(r#"{"labels":{"a":1}}"#).is_err(), "values are strings");
    }

    #[test]
    fn target_port_is_int_or_string() {
        let p: ServicePort = serde_json::from_str(r#"{"port":80,"targetPort":"http"}"#).expect("decodes");
        assert_eq!(p.target_port, Some(IntOrString::String("http".into())));
        let p: ServicePort = serde_json::from_str(r#"{"port":80,"targetPort":8080}"#).expect("decodes");
        assert_eq!(p.target_port, Some(IntOrString::Int(8080)));
    }
}
