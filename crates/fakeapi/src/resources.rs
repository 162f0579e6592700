//! The kinds the fake server serves, and how request paths map onto them.

/// One API resource, as discovery would describe it.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// Empty for the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Whether `.../NAME/status` exists; then a main-resource PUT keeps the stored status.
    pub status_subresource: bool,
}

pub static RESOURCES: &[Resource] = &[
    Resource { group: "networking.k8s.io", version: "v1", plural: "ingresses", kind: "Ingress", namespaced: true, status_subresource: true },
    Resource { group: "networking.k8s.io", version: "v1", plural: "ingressclasses", kind: "IngressClass", namespaced: false, status_subresource: false },
    Resource { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true, status_subresource: true },
    Resource { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true, status_subresource: false },
    Resource { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true, status_subresource: true },
    Resource { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false, status_subresource: true },
    Resource { group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice", namespaced: true, status_subresource: false },
    Resource { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true, status_subresource: false },
];

impl Resource {
    /// `v1` or `group/version`, as objects carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `ingresses.networking.k8s.io` or `services`, as error messages name it.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
        RESOURCES.iter().find(|r| r.kind == kind && r.api_version() == api_version)
    }

    fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
    }
}

/// What a resource path names.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static Resource,
    /// Set for namespaced paths; `None` means all namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

/// Why a path names no resource.
#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not an API path at all, or an unknown group/version/plural.
    NotFound,
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` paths (already without query).
pub fn parse_path(path: &str) -> Result<Target, PathError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(PathError::NotFound),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if !ns.is_empty() && Resource::by_plural(group, version, plural).is_some() => {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return Err(PathError::NotFound),
    };
    let resource = Resource::by_plural(group, version, plural).ok_or(PathError::NotFound)?;
    if name.as_deref() == Some("") || (status && !resource.status_subresource) {
        return Err(PathError::NotFound);
    }
    if namespace.is_some() && !resource.namespaced {
        return Err(PathError::NotFound);
    }
    // A cluster-wide path to a single namespaced object does not exist.
    if namespace.is_none() && resource.namespaced && name.is_some() {
        return Err(PathError::NotFound);
    }
    Ok(Target { resource, namespace, name, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_resources() {
        let t = parse_path("/apis/networking.k8s.io/v1/ingresses").unwrap();
        assert_eq!((t.resource.kind, t.namespace, t.name, t.status), ("Ingress", None, None, false));
        let t = parse_path("/apis/networking.k8s.io/v1/namespaces/web/ingresses/site/status").unwrap();
        assert_eq!((t.namespace.as_deref(), t.name.as_deref(), t.status), (Some("web"), Some("site"), true));
        let t = parse_path("/api/v1/namespaces/default/secrets").unwrap();
        assert_eq!((t.resource.kind, t.namespace.as_deref()), ("Secret", Some("default")));
        let t = parse_path("/apis/networking.k8s.io/v1/ingressclasses/nginx").unwrap();
        assert_eq!((t.resource.kind, t.name.as_deref()), ("IngressClass", Some("nginx")));
        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!((t.resource.kind, t.name.as_deref()), ("Namespace", Some("kube-system")));
        let t = parse_path("/apis/discovery.k8s.io/v1/endpointslices").unwrap();
        assert_eq!(t.resource.kind, "EndpointSlice");
    }

    #[test]
    fn unknown_or_misplaced_paths_are_not_found() {
        for path in [
            "/",
            "/api",
            "/apis/networking.k8s.io/v1/widgets",
            "/apis/networking.k8s.io/v1/ingresses/site",
            "/apis/networking.k8s.io/v1/namespaces/a/ingressclasses",
            "/api/v1/namespaces/a/secrets/s/status",
            "/api/v1/namespaces/a/secrets/s/extra/more",
            "/apis/networking.k8s.io/v2/ingresses",
        ] {
            assert_eq!(parse_path(path), Err(PathError::NotFound), "{path}");
        }
    }

    #[test]
    fn api_versions() {
        assert_eq!(Resource::by_kind("v1", "Secret").unwrap().plural, "secrets");
        assert_eq!(Resource::by_kind("networking.k8s.io/v1", "Ingress").unwrap().qualified_plural(), "ingresses.networking.k8s.io");
        assert!(Resource::by_kind("v1", "Ingress").is_none());
    }
}
