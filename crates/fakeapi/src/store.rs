//! The object store: objects, the one global resourceVersion, the bounded event history,
//! paginated lists and watch event selection. No sockets and no clock reads here: the server
//! passes the time in, so every rule is unit-tested directly.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::certs::{base64, base64_decode};
use crate::resources::{Resource, RESOURCES};
use crate::selector::Selector;

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 404: no such object.
    NotFound { resource: &'static Resource, name: String },
    /// 409: create of a name that exists.
    AlreadyExists { resource: &'static Resource, name: String },
    /// 409: update carrying a stale metadata.resourceVersion.
    Conflict { resource: &'static Resource, name: String },
    /// 400: the request itself is malformed (body, selector, namespace mismatch).
    BadRequest(String),
    /// 422: the object breaks a rule (missing name, wrong kind).
    Invalid(String),
    /// 405: the path does not take this method.
    MethodNotAllowed(String),
    /// 410: the resourceVersion or continue token is older than the retained history.
    Expired(String),
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::Invalid(_) => 422,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Expired(_) => 410,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::NotFound { resource, name } => format!("{} {name:?} not found", resource.qualified_plural()),
            ApiError::AlreadyExists { resource, name } => {
                format!("{} {name:?} already exists", resource.qualified_plural())
            }
            ApiError::Conflict { resource, name } => format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified_plural()
            ),
            ApiError::BadRequest(m) | ApiError::Invalid(m) | ApiError::MethodNotAllowed(m) | ApiError::Expired(m) => m.clone(),
        }
    }

    /// The `Status` object the real API server sends for this error.
    pub fn status(&self) -> Value {
        let reason = match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid(_) => "Invalid",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Expired(_) => "Expired",
        };
        let mut status = failure_status(self.code(), reason, &self.message());
        if let ApiError::NotFound { resource, name }
        | ApiError::AlreadyExists { resource, name }
        | ApiError::Conflict { resource, name } = self
        {
            status["details"] = json!({"name": name, "group": resource.group, "kind": resource.plural});
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.message())
    }
}

/// `{"kind":"Status",...,"status":"Failure"}` with the given code, reason and message.
pub fn failure_status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, as retained for watch replay.
#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    resource: &'static Resource,
    kind: EventType,
    /// After the write; for a delete, the last state stamped with the delete's version.
    object: Value,
    /// Before the write: selectors need both sides to turn a MODIFIED into ADDED or DELETED.
    previous: Option<Value>,
}

/// What a list or watch is restricted to.
pub struct Scope<'a> {
    pub resource: &'static Resource,
    /// `None`: every namespace (and always for cluster-scoped kinds).
    pub namespace: Option<&'a str>,
    pub labels: &'a Selector,
    pub fields: &'a Selector,
}

impl Scope<'_> {
    fn matches(&self, object: &Value) -> bool {
        let namespace_ok = match self.namespace {
            Some(ns) => object.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns),
            None => true,
        };
        namespace_ok && self.labels.matches(object) && self.fields.matches(object)
    }
}

/// A list frozen at its resourceVersion, so every page of a paginated list is consistent.
struct Snapshot {
    rv: u64,
    items: Vec<Value>,
}

/// Identifies a stored object: (index into RESOURCES, namespace or "", name).
type Key = (usize, String, String);

/// How many paginated lists keep their frozen items; older tokens answer 410.
const MAX_SNAPSHOTS: usize = 64;

pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Every event with a resourceVersion above this one is still in `history`.
    floor: u64,
    snapshots: HashMap<u64, Snapshot>,
    next_snapshot: u64,
    uid_seed: u64,
}

impl Store {
    /// `start_rv` should come from the wall clock so a restarted server's versions stay
    /// above the previous run's.
    pub fn new(start_rv: u64, history_limit: usize, uid_seed: u64) -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: start_rv,
            history: VecDeque::new(),
            history_limit,
            floor: start_rv,
            snapshots: HashMap::new(),
            next_snapshot: 1,
            uid_seed,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, resource: &'static Resource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(resource, namespace, name))
    }

    /// Current objects in scope, in list order (namespace, then name).
    pub fn select(&self, scope: &Scope) -> Vec<Value> {
        let index = resource_index(scope.resource);
        self.objects
            .range((index, String::new(), String::new())..)
            .take_while(|((i, _, _), _)| *i == index)
            .map(|(_, object)| object)
            .filter(|object| scope.matches(object))
            .cloned()
            .collect()
    }

    /// POST. `path_namespace` is the namespace from the URL; without one (the Rust API and
    /// object files) the object's own namespace is used, `default` if it has none.
    pub fn create(
        &mut self,
        resource: &'static Resource,
        path_namespace: Option<&str>,
        object: Value,
        now_unix: u64,
    ) -> Result<Value, ApiError> {
        let mut object = normalize(resource, path_namespace, object, self.rv)?;
        let (namespace, name) = ns_name(&object);
        let key = key(resource, &namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists { resource, name });
        }
        let rv = self.rv + 1;
        let meta = metadata_mut(&mut object);
        meta.insert("uid".into(), Value::String(uid(self.uid_seed, rv)));
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        if meta.get("creationTimestamp").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("creationTimestamp".into(), Value::String(rfc3339(now_unix)));
        }
        meta.insert("generation".into(), json!(1));
        self.commit(resource, key, EventType::Added, object.clone(), None);
        Ok(object)
    }

    /// PUT of the main resource. A set metadata.resourceVersion must equal the stored one.
    /// Kinds with a status subresource keep their stored status.
    pub fn replace(
        &mut self,
        resource: &'static Resource,
        path_namespace: Option<&str>,
        path_name: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiError> {
        let mut object = normalize(resource, path_namespace, object, self.rv)?;
        let (namespace, name) = ns_name(&object);
        check_path_name(path_name, &name)?;
        let key = key(resource, &namespace, &name);
        let stored = self.objects.get(&key).ok_or_else(|| ApiError::NotFound { resource, name: name.clone() })?;
        check_resource_version(resource, &object, stored, &name)?;
        if resource.status_subresource {
            match stored.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => remove_field(&mut object, "status"),
            }
        }
        self.write_update(resource, key, object)
    }

    /// PUT `.../status`: only `status` is taken from the body.
    pub fn replace_status(
        &mut self,
        resource: &'static Resource,
        path_namespace: Option<&str>,
        path_name: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiError> {
        let object = normalize(resource, path_namespace, object, self.rv)?;
        let (namespace, name) = ns_name(&object);
        check_path_name(path_name, &name)?;
        let key = key(resource, &namespace, &name);
        let stored = self.objects.get(&key).ok_or_else(|| ApiError::NotFound { resource, name: name.clone() })?;
        check_resource_version(resource, &object, stored, &name)?;
        let mut updated = stored.clone();
        match object.get("status") {
            Some(status) => updated["status"] = status.clone(),
            None => remove_field(&mut updated, "status"),
        }
        self.write_update(resource, key, updated)
    }

    /// PATCH with a JSON merge patch (RFC 7386); strategic merge patches are treated the
    /// same, which is exact for the maps-only patches a controller sends.
    pub fn merge_patch(
        &mut self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let stored = self
            .get(resource, namespace, name)
            .ok_or_else(|| ApiError::NotFound { resource, name: name.to_string() })?
            .clone();
        let mut patched = stored.clone();
        merge(&mut patched, patch);
        if patch.pointer("/metadata/resourceVersion").is_none() {
            patched["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        }
        let ns = resource.namespaced.then_some(namespace);
        if status_only {
            self.replace_status(resource, ns, Some(name), patched)
        } else {
            self.replace(resource, ns, Some(name), patched)
        }
    }

    /// Create, or replace ignoring resourceVersion; the stored status survives when the
    /// new object has none. For tests and object files.
    pub fn apply(&mut self, object: Value, now_unix: u64) -> Result<Value, ApiError> {
        let resource = resource_of(&object)?;
        let mut object = normalize(resource, None, object, self.rv)?;
        let (namespace, name) = ns_name(&object);
        let key = key(resource, &namespace, &name);
        let Some(stored) = self.objects.get(&key) else {
            return self.create(resource, None, object, now_unix);
        };
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        if let Some(status) = object.get("status").cloned().or_else(|| stored.get("status").cloned()) {
            object["status"] = status;
        }
        self.write_update(resource, key, object)
    }

    pub fn delete(&mut self, resource: &'static Resource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let key = key(resource, namespace, name);
        let mut object =
            self.objects.get(&key).cloned().ok_or_else(|| ApiError::NotFound { resource, name: name.to_string() })?;
        let rv = self.rv + 1;
        metadata_mut(&mut object).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let previous = self.objects.remove(&key);
        self.record(resource, EventType::Deleted, object.clone(), previous);
        Ok(object)
    }

    /// Forgets every event and every paginated list: older versions and tokens get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.snapshots.clear();
        self.floor = self.rv;
    }

    /// A list body (`IngressList` etc.). `limit` 0 means everything; `continue_token` pages
    /// through the frozen view of the first page's resourceVersion.
    pub fn list(&mut self, scope: &Scope, limit: usize, continue_token: Option<&str>) -> Result<Value, ApiError> {
        let (rv, id, offset) = match continue_token {
            Some(token) => {
                let (rv, id, offset) = decode_token(token)
                    .ok_or_else(|| ApiError::BadRequest(format!("invalid continue token: {token:?}")))?;
                if rv < self.floor || !self.snapshots.contains_key(&id) {
                    return Err(ApiError::Expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    ));
                }
                (rv, id, offset)
            }
            None if limit == 0 => return Ok(self.list_body(scope.resource, self.rv, self.select(scope), None)),
            None => {
                let id = self.next_snapshot;
                self.next_snapshot += 1;
                if self.snapshots.len() >= MAX_SNAPSHOTS {
                    if let Some(oldest) = self.snapshots.keys().min().copied() {
                        self.snapshots.remove(&oldest);
                    }
                }
                self.snapshots.insert(id, Snapshot { rv: self.rv, items: self.select(scope) });
                (self.rv, id, 0)
            }
        };
        let snapshot = &self.snapshots[&id];
        let end = if limit == 0 { snapshot.items.len() } else { (offset + limit).min(snapshot.items.len()) };
        let items = snapshot.items.get(offset..end).unwrap_or_default().to_vec();
        let next = (end < snapshot.items.len()).then(|| (encode_token(rv, id, end), snapshot.items.len() - end));
        debug_assert_eq!(snapshot.rv, rv);
        Ok(self.list_body(scope.resource, rv, items, next))
    }

    fn list_body(&self, resource: &Resource, rv: u64, items: Vec<Value>, next: Option<(String, usize)>) -> Value {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some((token, remaining)) = next {
            metadata["continue"] = Value::String(token);
            metadata["remainingItemCount"] = json!(remaining);
        }
        json!({"kind": resource.list_kind(), "apiVersion": resource.api_version(), "metadata": metadata, "items": items})
    }

    /// Events in scope with resourceVersion above `after`, as a watcher sees them: a
    /// modification that moves an object into or out of a selector's scope becomes ADDED
    /// or DELETED. 410 when some of those events are no longer retained.
    pub fn events_after(&self, after: u64, scope: &Scope) -> Result<Vec<(EventType, Value)>, ApiError> {
        if after < self.floor {
            return Err(ApiError::Expired(format!("too old resource version: {after} ({})", self.floor + 1)));
        }
        let mut out = Vec::new();
        for event in self.history.iter().filter(|e| e.rv > after && std::ptr::eq(e.resource, scope.resource)) {
            let now = scope.matches(&event.object);
            let before = event.previous.as_ref().is_some_and(|p| scope.matches(p));
            let kind = match (event.kind, before, now) {
                (EventType::Added, _, true) => EventType::Added,
                (EventType::Deleted, _, true) => EventType::Deleted,
                (EventType::Modified, true, true) => EventType::Modified,
                (EventType::Modified, false, true) => EventType::Added,
                (EventType::Modified, true, false) => {
                    let mut gone = event.previous.clone().unwrap_or_default();
                    gone["metadata"]["resourceVersion"] = Value::String(event.rv.to_string());
                    out.push((EventType::Deleted, gone));
                    continue;
                }
                _ => continue,
            };
            out.push((kind, event.object.clone()));
        }
        Ok(out)
    }

    fn write_update(&mut self, resource: &'static Resource, key: Key, mut object: Value) -> Result<Value, ApiError> {
        let previous = self.objects.get(&key).cloned().unwrap_or_default();
        let rv = self.rv + 1;
        let generation = previous.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let spec_changed = previous.get("spec") != object.get("spec");
        let meta = metadata_mut(&mut object);
        for kept in ["uid", "creationTimestamp"] {
            if let Some(value) = previous.pointer(&format!("/metadata/{kept}")) {
                meta.insert(kept.into(), value.clone());
            }
        }
        meta.insert("generation".into(), json!(if spec_changed { generation + 1 } else { generation }));
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.commit(resource, key, EventType::Modified, object.clone(), Some(previous));
        Ok(object)
    }

    fn commit(&mut self, resource: &'static Resource, key: Key, kind: EventType, object: Value, previous: Option<Value>) {
        self.objects.insert(key, object.clone());
        self.record(resource, kind, object, previous);
    }

    fn record(&mut self, resource: &'static Resource, kind: EventType, object: Value, previous: Option<Value>) {
        self.rv += 1;
        self.history.push_back(Event { rv: self.rv, resource, kind, object, previous });
        while self.history.len() > self.history_limit {
            if let Some(evicted) = self.history.pop_front() {
                self.floor = evicted.rv;
            }
        }
    }
}

/// The resource an object names by apiVersion and kind.
pub fn resource_of(object: &Value) -> Result<&'static Resource, ApiError> {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    Resource::by_kind(api_version, kind)
        .ok_or_else(|| ApiError::BadRequest(format!("no kind {kind:?} is registered for version {api_version:?}")))
}

/// Checks and fills what every stored object carries: kind, apiVersion, metadata.name and
/// (for namespaced kinds) metadata.namespace.
fn normalize(resource: &Resource, path_namespace: Option<&str>, object: Value, rv: u64) -> Result<Value, ApiError> {
    let Value::Object(mut map) = object else {
        return Err(ApiError::BadRequest("the body is not a JSON object".into()));
    };
    for (field, want) in [("kind", resource.kind.to_string()), ("apiVersion", resource.api_version())] {
        match map.get(field) {
            None => {
                map.insert(field.into(), Value::String(want));
            }
            Some(Value::String(given)) if *given == want => {}
            Some(given) => {
                return Err(ApiError::BadRequest(format!("{field} {given} does not match the {want} of this path")));
            }
        }
    }
    let meta = match map.entry("metadata").or_insert_with(|| json!({})) {
        Value::Object(meta) => meta,
        _ => return Err(ApiError::BadRequest("metadata is not an object".into())),
    };
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        let Some(prefix) = meta.get("generateName").and_then(Value::as_str) else {
            return Err(ApiError::Invalid(format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", resource.kind)));
        };
        let generated = format!("{prefix}{}", &uid(rv, rv)[..5]);
        meta.insert("name".into(), Value::String(generated));
    }
    if resource.namespaced {
        let given = meta.get("namespace").and_then(Value::as_str).filter(|ns| !ns.is_empty());
        let namespace = match (path_namespace, given) {
            (Some(path), Some(body)) if path != body => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            (Some(path), _) => path.to_string(),
            (None, Some(body)) => body.to_string(),
            (None, None) => "default".to_string(),
        };
        meta.insert("namespace".into(), Value::String(namespace));
    } else {
        meta.remove("namespace");
    }
    Ok(Value::Object(map))
}

fn check_path_name(path_name: Option<&str>, body_name: &str) -> Result<(), ApiError> {
    match path_name {
        Some(path) if path != body_name => Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({path})"
        ))),
        _ => Ok(()),
    }
}

fn check_resource_version(resource: &'static Resource, object: &Value, stored: &Value, name: &str) -> Result<(), ApiError> {
    let given = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
    let current = stored.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
    if given.is_empty() || given == current {
        Ok(())
    } else {
        Err(ApiError::Conflict { resource, name: name.to_string() })
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(map) = target {
                for (field, value) in fields {
                    if value.is_null() {
                        map.remove(field);
                    } else {
                        merge(map.entry(field.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn remove_field(object: &mut Value, field: &str) {
    if let Value::Object(map) = object {
        map.remove(field);
    }
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match &mut object["metadata"] {
        Value::Object(meta) => meta,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn ns_name(object: &Value) -> (String, String) {
    let field = |f: &str| object.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or_default().to_string();
    (field("namespace"), field("name"))
}

fn resource_index(resource: &Resource) -> usize {
    RESOURCES.iter().position(|r| std::ptr::eq(r, resource)).unwrap_or(usize::MAX)
}

fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
    let namespace = if resource.namespaced { namespace } else { "" };
    (resource_index(resource), namespace.to_string(), name.to_string())
}

fn encode_token(rv: u64, id: u64, offset: usize) -> String {
    base64(json!({"v": "meta.k8s.io/v1", "rv": rv, "id": id, "offset": offset}).to_string().as_bytes())
}

fn decode_token(token: &str) -> Option<(u64, u64, usize)> {
    let value: Value = serde_json::from_slice(&base64_decode(token)?).ok()?;
    Some((value["rv"].as_u64()?, value["id"].as_u64()?, usize::try_from(value["offset"].as_u64()?).ok()?))
}

/// A UUID-shaped identifier, unique per (seed, resourceVersion).
fn uid(seed: u64, rv: u64) -> String {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = mix(seed ^ rv);
    let b = mix(a ^ rv.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `2026-11-25T10:00:00Z`: the timestamp shape of metadata.creationTimestamp.
pub fn rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingresses() -> &'static Resource {
        Resource::by_kind("networking.k8s.io/v1", "Ingress").unwrap()
    }

    fn ingress(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "spec": {"rules": []}})
    }

    fn all<'a>(resource: &'static Resource, any: &'a Selector) -> Scope<'a> {
        Scope { resource, namespace: None, labels: any, fields: any }
    }

    #[test]
    fn writes_take_successive_global_versions_and_stamp_metadata() {
        let mut store = Store::new(100, 10, 7);
        let a = store.create(ingresses(), Some("web"), ingress("web", "a"), 1_795_000_000).unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "101");
        assert_eq!(a["metadata"]["namespace"], "web");
        assert_eq!(a["metadata"]["creationTimestamp"], "2026-11-18T11:06:40Z");
        assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        let s = store.create(Resource::by_kind("v1", "Service").unwrap(), None, svc, 0).unwrap();
        assert_eq!(s["metadata"]["resourceVersion"], "102");
        assert_eq!(s["metadata"]["namespace"], "default");
        let mut given = ingress("web", "b");
        given["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
        let b = store.create(ingresses(), None, given, 0).unwrap();
        assert_eq!(b["metadata"]["creationTimestamp"], "2020-01-01T00:00:00Z");
        assert_eq!(
            store.create(ingresses(), None, ingress("web", "a"), 0).unwrap_err().status()["reason"],
            "AlreadyExists"
        );
    }

    #[test]
    fn replace_checks_resource_version_and_keeps_status() {
        let mut store = Store::new(0, 10, 1);
        let created = store.create(ingresses(), None, ingress("web", "a"), 0).unwrap();
        let mut with_status = created.clone();
        with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
        let updated = store.replace_status(ingresses(), Some("web"), Some("a"), with_status).unwrap();
        assert_eq!(updated["metadata"]["resourceVersion"], "2");
        let mut stale = created.clone();
        stale["spec"] = json!({"rules": [{"host": "x"}]});
        let err = store.replace(ingresses(), Some("web"), Some("a"), stale.clone()).unwrap_err();
        assert_eq!((err.code(), err.status()["reason"].as_str()), (409, Some("Conflict")));
        stale["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        let replaced = store.replace(ingresses(), Some("web"), Some("a"), stale).unwrap();
        assert_eq!(replaced["status"]["loadBalancer"]["ingress"][0]["ip"], "10.0.0.1");
        assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
        assert_eq!(replaced["metadata"]["generation"], 2);
        let missing = store.replace(ingresses(), Some("web"), Some("zz"), ingress("web", "zz")).unwrap_err();
        assert_eq!(missing.code(), 404);
    }

    #[test]
    fn merge_patch_updates_status_only_through_status() {
        let mut store = Store::new(0, 10, 1);
        store.create(ingresses(), None, ingress("web", "a"), 0).unwrap();
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}, "spec": {"x": 1}});
        let patched = store.merge_patch(ingresses(), "web", "a", &patch, true).unwrap();
        assert_eq!(patched["status"]["loadBalancer"]["ingress"][0]["ip"], "1.2.3.4");
        assert!(patched["spec"].get("x").is_none());
        let patched = store.merge_patch(ingresses(), "web", "a", &json!({"metadata": {"labels": {"app": null}}}), false).unwrap();
        assert!(patched["metadata"]["labels"].get("app").is_none());
    }

    #[test]
    fn pages_stay_consistent_and_compaction_expires_tokens() {
        let mut store = Store::new(0, 100, 1);
        for name in ["a", "b", "c", "d", "e"] {
            store.create(ingresses(), None, ingress("web", name), 0).unwrap();
        }
        let any = Selector::labels("").unwrap();
        let page1 = store.list(&all(ingresses(), &any), 2, None).unwrap();
        assert_eq!(page1["kind"], "IngressList");
        assert_eq!(page1["metadata"]["resourceVersion"], "5");
        let token = page1["metadata"]["continue"].as_str().unwrap().to_string();
        store.delete(ingresses(), "web", "c").unwrap();
        store.create(ingresses(), None, ingress("web", "f"), 0).unwrap();
        let page2 = store.list(&all(ingresses(), &any), 2, Some(&token)).unwrap();
        let names: Vec<_> = page2["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].clone()).collect();
        assert_eq!(names, vec!["c", "d"]);
        assert_eq!(page2["metadata"]["resourceVersion"], "5");
        let token3 = page2["metadata"]["continue"].as_str().unwrap().to_string();
        let page3 = store.list(&all(ingresses(), &any), 2, Some(&token3)).unwrap();
        assert_eq!(page3["items"].as_array().unwrap().len(), 1);
        assert!(page3["metadata"].get("continue").is_none());
        store.compact();
        let err = store.list(&all(ingresses(), &any), 2, Some(&token3)).unwrap_err();
        assert_eq!((err.code(), err.status()["reason"].as_str()), (410, Some("Expired")));
        assert_eq!(store.list(&all(ingresses(), &any), 2, Some("garbage")).unwrap_err().code(), 400);
    }

    #[test]
    fn events_replay_after_a_version_and_expire_beyond_history() {
        let mut store = Store::new(0, 3, 1);
        let any = Selector::labels("").unwrap();
        store.create(ingresses(), None, ingress("web", "a"), 0).unwrap();
        store.create(Resource::by_kind("v1", "Secret").unwrap(), None, json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}), 0).unwrap();
        store.delete(ingresses(), "web", "a").unwrap();
        let events = store.events_after(1, &all(ingresses(), &any)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, EventType::Deleted);
        assert_eq!(events[0].1["metadata"]["resourceVersion"], "3");
        store.create(ingresses(), None, ingress("web", "b"), 0).unwrap();
        let err = store.events_after(0, &all(ingresses(), &any)).unwrap_err();
        assert_eq!(err.message(), "too old resource version: 0 (2)");
        assert_eq!(store.events_after(1, &all(ingresses(), &any)).unwrap().len(), 2);
        store.compact();
        assert!(store.events_after(3, &all(ingresses(), &any)).is_err());
        assert!(store.events_after(4, &all(ingresses(), &any)).unwrap().is_empty());
    }

    #[test]
    fn selectors_turn_modifications_into_added_and_deleted() {
        let mut store = Store::new(0, 10, 1);
        let shop = Selector::labels("app=shop").unwrap();
        let any = Selector::labels("").unwrap();
        let scope = Scope { resource: ingresses(), namespace: Some("web"), labels: &shop, fields: &any };
        let mut obj = store.create(ingresses(), None, ingress("web", "a"), 0).unwrap();
        obj["metadata"]["labels"]["app"] = json!("shop");
        store.replace(ingresses(), None, None, obj.clone()).unwrap();
        obj["metadata"]["labels"]["app"] = json!("other");
        obj["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        store.replace(ingresses(), None, None, obj).unwrap();
        store.create(ingresses(), None, ingress("other-ns", "shop"), 0).unwrap();
        let kinds: Vec<_> = store.events_after(0, &scope).unwrap().into_iter().map(|(k, o)| (k, o["metadata"]["resourceVersion"].clone())).collect();
        assert_eq!(kinds, vec![(EventType::Added, json!("2")), (EventType::Deleted, json!("3"))]);
    }

    #[test]
    fn bad_objects_are_rejected_with_status() {
        let mut store = Store::new(0, 10, 1);
        let no_name = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {}});
        assert_eq!(store.create(ingresses(), None, no_name, 0).unwrap_err().code(), 422);
        let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
        assert_eq!(store.create(ingresses(), None, wrong_kind, 0).unwrap_err().code(), 400);
        assert_eq!(store.create(ingresses(), Some("a"), ingress("b", "x"), 0).unwrap_err().code(), 400);
        assert_eq!(store.create(ingresses(), None, json!([1]), 0).unwrap_err().code(), 400);
        let generated = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"generateName": "web-"}});
        let created = store.create(ingresses(), None, generated, 0).unwrap();
        assert!(created["metadata"]["name"].as_str().unwrap().starts_with("web-"));
        assert_eq!(store.resource_version(), 1);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_600_800), "2026-11-25T10:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
