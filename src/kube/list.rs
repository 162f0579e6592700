//! Paths, query strings and paginated list decoding, without I/O.
//!
//! A kind's list is fetched in pages of [`PAGE_SIZE`] and only becomes the
//! cache's new set once the last page arrived: a half list would delete every
//! object on the missing pages.

use serde::Deserialize;

use super::watch_line::decode_object;
use super::{Error, Kind, Object, Resource};

/// Objects per list page: small enough for bounded memory per request,
/// large enough that a big cluster lists in a few round trips.
pub const PAGE_SIZE: usize = 500;

/// Every resource ingressd reads as (API group, version, resource), so the
/// manifests can be checked to grant list and watch on exactly these.
pub fn api_resources() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    Kind::ALL.into_iter().map(|kind| kind.resource()).map(|r| (r.group, r.version, r.plural))
}

/// The collection path of `kind`, in `namespace` when given and the kind is
/// namespaced. Some kinds additionally get a field selector in the query
/// (see [`list_query`], [`watch_query`]).
pub fn api_path(kind: Kind, namespace: Option<&str>) -> String {
    resource_path(kind.resource(), namespace)
}

/// The collection path of any resource row, in `namespace` when given and
/// the resource is namespaced.
pub fn resource_path<T>(resource: &Resource<T>, namespace: Option<&str>) -> String {
    let prefix = match resource.group {
        "" => format!("/api/{}", resource.version),
        group => format!("/apis/{group}/{}", resource.version),
    };
    match namespace.filter(|ns| !ns.is_empty() && resource.namespaced) {
        Some(ns) => format!("{prefix}/namespaces/{}/{}", encode(ns), resource.plural),
        None => format!("{prefix}/{}", resource.plural),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for query
/// values (continue tokens are base64 with `=`, `+` and `/`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What narrows one watcher's objects beyond its resource row, unencoded
/// (`app=x`, `metadata.name=y`); a field selector is added to the row's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selectors<'a> {
    pub labels: Option<&'a str>,
    pub fields: Option<&'a str>,
}

fn selectors<T>(resource: &Resource<T>, narrowed: Selectors, query: &mut String) {
    let extra_fields = narrowed.fields.filter(|f| !f.is_empty()).map(encode);
    match (resource.field_selector, extra_fields) {
        (Some(row), Some(extra)) => query.push_str(&format!("&fieldSelector={row}%2C{extra}")),
        (Some(row), None) => query.push_str(&format!("&fieldSelector={row}")),
        (None, Some(extra)) => query.push_str(&format!("&fieldSelector={extra}")),
        (None, None) => {}
    }
    if let Some(labels) = narrowed.labels.filter(|l| !l.is_empty()) {
        query.push_str("&labelSelector=");
        query.push_str(&encode(labels));
    }
}

/// The query string (without `?`) of one list page.
pub fn list_query<T>(resource: &Resource<T>, narrowed: Selectors, continue_token: Option<&str>) -> String {
    let mut query = format!("limit={PAGE_SIZE}");
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        query.push_str("&continue=");
        query.push_str(&encode(token));
    }
    selectors(resource, narrowed, &mut query);
    query
}

/// The query string (without `?`) of a watch from `resource_version`.
pub fn watch_query<T>(resource: &Resource<T>, narrowed: Selectors, resource_version: &str, timeout_seconds: u64) -> String {
    let mut query =
        format!("watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={timeout_seconds}", encode(resource_version));
    selectors(resource, narrowed, &mut query);
    query
}

/// One decoded page of a list response.
#[derive(Debug)]
pub struct ListPage<T = Object> {
    pub items: Vec<T>,
    pub resource_version: String,
    /// Present while more pages follow.
    pub continue_token: Option<String>,
    /// Items that did not decode; each was logged.
    pub skipped: usize,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// Items stay raw JSON text borrowed from the body until each is decoded
/// as its kind: no JSON tree of the whole page is built on the way.
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default, borrow)]
    items: Option<Vec<&'a serde_json::value::RawValue>>,
}

/// Decodes a list page. An item that does not decode is logged with its
/// namespace/name and skipped, so one bad object cannot hide all the others.
pub fn decode_list_page<T>(resource: &Resource<T>, body: &[u8]) -> Result<ListPage<T>, Error> {
    let raw: RawList =
        serde_json::from_slice(body).map_err(|e| Error::Decode(format!("{} list: {e}", resource.name)))?;
    if raw.metadata.resource_version.is_empty() {
        return Err(Error::Decode(format!("{} list without metadata.resourceVersion", resource.name)));
    }
    let mut items = Vec::new();
    let mut skipped = 0;
    for item in raw.items.unwrap_or_default() {
        match decode_object(resource, item.get()) {
            Ok(object) => items.push(object),
            Err(e) => {
                skipped += 1;
                log::warn!("{}: skipping list item: {e}", resource.name);
            }
        }
    }
    let continue_token = raw.metadata.continue_token.filter(|t| !t.is_empty());
    Ok(ListPage { items, resource_version: raw.metadata.resource_version, continue_token, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_kind_and_namespace() {
        assert_eq!(api_path(Kind::Ingress, None), "/apis/networking.k8s.io/v1/ingresses");
        assert_eq!(api_path(Kind::Ingress, Some("web")), "/apis/networking.k8s.io/v1/namespaces/web/ingresses");
        assert_eq!(api_path(Kind::IngressClass, Some("web")), "/apis/networking.k8s.io/v1/ingressclasses");
        assert_eq!(api_path(Kind::Service, Some("web")), "/api/v1/namespaces/web/services");
        assert_eq!(api_path(Kind::EndpointSlice, None), "/apis/discovery.k8s.io/v1/endpointslices");
        assert_eq!(api_path(Kind::Secret, Some("web")), "/api/v1/namespaces/web/secrets");
        assert_eq!(api_path(Kind::Secret, Some("")), "/api/v1/secrets");
    }

    #[test]
    fn every_kind_has_its_own_resource_row() {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "Kind::ALL is in declaration order");
        }
        let plurals: std::collections::BTreeSet<_> = api_resources().map(|(_, _, plural)| plural).collect();
        assert_eq!(plurals.len(), Kind::ALL.len());
    }

    #[test]
    fn list_queries() {
        let none = Selectors::default();
        assert_eq!(list_query(Kind::Ingress.resource(), none, None), "limit=500");
        assert_eq!(list_query(Kind::Service.resource(), none, Some("eyJ2Ijo+/=")), "limit=500&continue=eyJ2Ijo%2B%2F%3D");
        assert_eq!(list_query(Kind::Secret.resource(), none, None), "limit=500&fieldSelector=type%3Dkubernetes.io%2Ftls");
        assert_eq!(
            list_query(Kind::EndpointSlice.resource(), Selectors { labels: Some("app in (a,b)"), fields: None }, Some("")),
            "limit=500&labelSelector=app%20in%20%28a%2Cb%29"
        );
        assert_eq!(
            list_query(Kind::Service.resource(), Selectors { labels: None, fields: Some("metadata.name=web") }, None),
            "limit=500&fieldSelector=metadata.name%3Dweb"
        );
        assert_eq!(
            list_query(Kind::Secret.resource(), Selectors { labels: None, fields: Some("metadata.name=a.b") }, None),
            "limit=500&fieldSelector=type%3Dkubernetes.io%2Ftls%2Cmetadata.name%3Da.b",
            "a narrowing field selector joins the row's, never replaces it"
        );
    }

    #[test]
    fn watch_queries() {
        let none = Selectors::default();
        assert_eq!(
            watch_query(Kind::Ingress.resource(), none, "123", 421),
            "watch=1&allowWatchBookmarks=true&resourceVersion=123&timeoutSeconds=421"
        );
        assert_eq!(
            watch_query(Kind::Secret.resource(), none, "9", 300),
            "watch=1&allowWatchBookmarks=true&resourceVersion=9&timeoutSeconds=300&fieldSelector=type%3Dkubernetes.io%2Ftls"
        );
    }

    #[test]
    fn a_page_keeps_its_continue_token_and_skips_bad_items() {
        let page1 = br#"{"kind":"ServiceList","metadata":{"resourceVersion":"77","continue":"tok"},
            "items":[{"metadata":{"name":"a","namespace":"n"}},{"metadata":{"name":"b","namespace":"n"}}]}"#;
        let page2 = br#"{"metadata":{"resourceVersion":"77","continue":""},
            "items":[{"metadata":{"name":"c","namespace":"n"}},{"metadata":{"name":"bad","namespace":"n"},"spec":{"ports":"x"}}]}"#;
        let first = decode_list_page(Kind::Service.resource(), page1).expect("page 1");
        assert_eq!(first.continue_token.as_deref(), Some("tok"));
        assert_eq!((first.items.len(), first.skipped), (2, 0));
        let second = decode_list_page(Kind::Service.resource(), page2).expect("page 2");
        assert_eq!(second.continue_token, None, "an empty token ends the list");
        assert_eq!(second.resource_version, "77");
        assert_eq!(second.skipped, 1);
        assert!(matches!(&second.items[..], [Object::Service(s)] if s.metadata.name == "c"));
    }

    #[test]
    fn empty_and_broken_lists() {
        let empty = decode_list_page(Kind::Ingress.resource(), br#"{"metadata":{"resourceVersion":"5"},"items":null}"#).expect("empty");
        assert!(empty.items.is_empty() && empty.continue_token.is_none());
        assert!(matches!(decode_list_page(Kind::Ingress.resource(), b"<html>"), Err(Error::Decode(_))));
        assert!(matches!(decode_list_page(Kind::Ingress.resource(), br#"{"items":[]}"#), Err(Error::Decode(_))));
    }
}
