//! The manifests are a contract with the cluster: `kubectl apply -k
//! manifests/` must apply them in an order that works, grant exactly the API
//! access ingressd uses, start it with flags it accepts from the image the
//! kustomization names, schedule it somewhere, and keep the pod locked down
//! while it binds ports 80 and 443. Each rule is a check that returns what is
//! wrong, and each check is shown to fail on a broken copy of the manifests.

use crate::support::yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ingressd::config::{Command, Config};
use yaml::Value;

/// The API resources ingressd lists and watches, as (API group, resource),
/// taken from the code so the manifests follow it.
fn api_resources() -> Vec<(&'static str, &'static str)> {
    ingressd::kube::list::API_RESOURCES.iter().map(|(group, _version, resource)| (*group, *resource)).collect()
}

/// Written by the status feature: (API group, resource, verb).
const STATUS_WRITES: &[(&str, &str, &str)] = &[("networking.k8s.io", "ingresses/status", "update")];

const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// The order `kubectl apply -f manifests/` must create things in: the
/// namespace before what lives in it, identities before their bindings, and
/// the DaemonSet last so its first pod finds its rights in place.
const KIND_ORDER: &[&str] = &["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "IngressClass", "DaemonSet"];

const NAMESPACE: &str = "ingressd";

struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value.str_at(&["kind"]).unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value.str_at(&["metadata", "name"]).unwrap_or("")
    }
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// The YAML files of one directory (not its subdirectories, like kubectl without -R), sorted.
fn yaml_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml") | Some("yml")))
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn parse_files(files: &[(String, String)]) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (file, text) in files {
        for value in yaml::parse(text).map_err(|e| format!("{file}: {e}"))? {
            docs.push(Doc { file: file.clone(), value });
        }
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [Doc], kind: &str) -> Result<&'a Doc, String> {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind).collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => Err(format!("expected exactly one {kind}, found {}", found.len())),
    }
}

/// The kustomization: which files `kubectl apply -k` applies, in order, and
/// the one place the image is named.
const KUSTOMIZATION: &str = "kustomization.yaml";

fn kustomization(files: &[(String, String)]) -> Result<Value, String> {
    let (_, text) = files.iter().find(|(name, _)| name == KUSTOMIZATION).ok_or("manifests/ has no kustomization.yaml")?;
    let mut docs = yaml::parse(text).map_err(|e| format!("{KUSTOMIZATION}: {e}"))?;
    match (docs.pop(), docs.is_empty()) {
        (Some(doc), true) if doc.str_at(&["kind"]) == Some("Kustomization") => Ok(doc),
        _ => Err(format!("{KUSTOMIZATION} is not one Kustomization")),
    }
}

/// The files the kustomization applies, in its order. Every numbered file is
/// among them, so none is left out of a deployment.
fn resource_files(files: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let kustomization = kustomization(files)?;
    let names: Vec<&str> = kustomization.list_at(&["resources"]).iter().filter_map(Value::as_str).collect();
    let mut resources = Vec::new();
    for name in &names {
        let file = files.iter().find(|(file, _)| file == name).ok_or_else(|| format!("{KUSTOMIZATION} lists {name}, which does not exist"))?;
        resources.push(file.clone());
    }
    for (file, _) in files {
        let numbered = file.split('-').next().is_some_and(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_digit()));
        if numbered && !names.contains(&file.as_str()) {
            return Err(format!("{file} is not among the resources of {KUSTOMIZATION}, so it is never applied"));
        }
    }
    Ok(resources)
}

/// The DaemonSet's image is the bare name the kustomization rewrites, to a
/// registry (not the old placeholder) and the version being built.
fn check_image(files: &[(String, String)], docs: &[Doc]) -> Result<(), String> {
    let kustomization = kustomization(files)?;
    let images = kustomization.list_at(&["images"]);
    let [image] = images else {
        return Err(format!("{KUSTOMIZATION} must name exactly one image under images:, found {}", images.len()));
    };
    let daemonset = &find(docs, "DaemonSet")?.value;
    let containers = daemonset.list_at(&["spec", "template", "spec", "containers"]);
    let used = containers.first().and_then(|c| c.str_at(&["image"])).unwrap_or("");
    expect_eq("the image name in kustomization.yaml", image.str_at(&["name"]), used)?;
    if used.contains(['/', ':']) {
        return Err(format!("the DaemonSet's image {used:?} should be the bare name kustomization.yaml rewrites"));
    }
    let new_name = image.str_at(&["newName"]).unwrap_or("");
    if new_name.is_empty() || new_name.starts_with("ghcr.io/ingressd/") {
        return Err(format!("the image newName {new_name:?} is missing or the old placeholder"));
    }
    expect_eq("the image newTag", image.str_at(&["newTag"]), env!("CARGO_PKG_VERSION"))
}

fn check_order(files: &[(String, String)], docs: &[Doc]) -> Result<(), String> {
    for (file, _) in files {
        let prefix = file.split('-').next().unwrap_or("");
        if prefix.len() != 2 || !prefix.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("{file}: file names start with a two-digit order prefix (00-, 01-, ...)"));
        }
    }
    let kinds: Vec<&str> = docs.iter().map(Doc::kind).collect();
    if kinds != KIND_ORDER {
        return Err(format!("kinds in apply order are {kinds:?}, expected {KIND_ORDER:?}"));
    }
    for doc in docs {
        if doc.value.str_at(&["apiVersion"]).is_none() || doc.name().is_empty() {
            return Err(format!("{}: {} without apiVersion or metadata.name", doc.file, doc.kind()));
        }
        let namespaced = !matches!(doc.kind(), "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "IngressClass");
        let namespace = doc.value.str_at(&["metadata", "namespace"]);
        if namespaced && namespace != Some(NAMESPACE) {
            return Err(format!("{}: {} {} is in namespace {namespace:?}, not {NAMESPACE}", doc.file, doc.kind(), doc.name()));
        }
    }
    if find(docs, "Namespace")?.name() != NAMESPACE {
        return Err(format!("the Namespace is not {NAMESPACE}"));
    }
    Ok(())
}

/// Every (group, resource, verb) a role's rules grant; wildcards and
/// non-resource URLs are errors in themselves.
fn grants(role: &Doc) -> Result<BTreeSet<(String, String, String)>, String> {
    let mut out = BTreeSet::new();
    let rules = role.value.list_at(&["rules"]);
    if rules.is_empty() {
        return Err(format!("{} {} has no rules", role.kind(), role.name()));
    }
    for rule in rules {
        if rule.get("nonResourceURLs").is_some() || rule.get("resourceNames").is_some() {
            return Err(format!("{} {}: nonResourceURLs/resourceNames are not expected", role.kind(), role.name()));
        }
        let strings = |key: &str| -> Result<Vec<String>, String> {
            let items: Vec<String> = rule.list_at(&[key]).iter().filter_map(Value::as_str).map(str::to_string).collect();
            if items.is_empty() {
                return Err(format!("{} {}: a rule without {key}", role.kind(), role.name()));
            }
            if items.iter().any(|i| i.contains('*')) {
                return Err(format!("{} {}: wildcard in {key}", role.kind(), role.name()));
            }
            Ok(items)
        };
        for group in strings("apiGroups")? {
            for resource in strings("resources")? {
                for verb in strings("verbs")? {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    Ok(out)
}

fn triples(list: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    list.iter().map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string())).collect()
}

fn check_binding(docs: &[Doc], binding_kind: &str, role_kind: &str) -> Result<(), String> {
    let binding = find(docs, binding_kind)?;
    let role = find(docs, role_kind)?;
    let account = find(docs, "ServiceAccount")?;
    if binding.value.str_at(&["roleRef", "kind"]) != Some(role_kind) || binding.value.str_at(&["roleRef", "name"]) != Some(role.name()) {
        return Err(format!("{binding_kind} does not refer to {role_kind} {}", role.name()));
    }
    let subjects = binding.value.list_at(&["subjects"]);
    let bound = subjects.iter().any(|s| {
        s.str_at(&["kind"]) == Some("ServiceAccount") && s.str_at(&["name"]) == Some(account.name()) && s.str_at(&["namespace"]) == Some(NAMESPACE)
    });
    if subjects.len() != 1 || !bound {
        return Err(format!("{binding_kind} must bind exactly the ServiceAccount {NAMESPACE}/{}", account.name()));
    }
    Ok(())
}

fn check_rbac(docs: &[Doc]) -> Result<(), String> {
    let mut expected: Vec<(&str, &str, &str)> = api_resources()
        .into_iter()
        .flat_map(|(group, resource)| READ_VERBS.iter().map(move |verb| (group, resource, *verb)))
        .collect();
    expected.extend_from_slice(STATUS_WRITES);
    let granted = grants(find(docs, "ClusterRole")?)?;
    let expected = triples(&expected);
    if let Some(missing) = expected.difference(&granted).next() {
        return Err(format!("the ClusterRole misses {missing:?}, which ingressd calls"));
    }
    if let Some(extra) = granted.difference(&expected).next() {
        return Err(format!("the ClusterRole grants {extra:?}, which ingressd never uses"));
    }
    let role_expected = triples(&[
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
    ]);
    let role_granted = grants(find(docs, "Role")?)?;
    if role_granted != role_expected {
        return Err(format!("the Role grants {role_granted:?}, expected exactly {role_expected:?}"));
    }
    check_binding(docs, "ClusterRoleBinding", "ClusterRole")?;
    check_binding(docs, "RoleBinding", "Role")
}

fn expect_eq(what: &str, found: Option<&str>, expected: &str) -> Result<(), String> {
    if found == Some(expected) {
        Ok(())
    } else {
        Err(format!("{what} is {found:?}, expected {expected:?}"))
    }
}

fn seconds(what: &str, value: Option<&str>) -> Result<u64, String> {
    value.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{what} is {value:?}, not a whole number of seconds"))
}

fn check_daemonset(docs: &[Doc]) -> Result<(), String> {
    let daemonset = &find(docs, "DaemonSet")?.value;
    let class = find(docs, "IngressClass")?;
    let account = find(docs, "ServiceAccount")?;
    let pod = daemonset.at(&["spec", "template", "spec"]).ok_or("DaemonSet without a pod template")?;
    let containers = pod.list_at(&["containers"]);
    let [container] = containers else {
        return Err(format!("expected one container, found {}", containers.len()));
    };

    // The flags are ones ingressd accepts, and they agree with the other objects.
    let args: Vec<String> = container.list_at(&["args"]).iter().filter_map(Value::as_str).map(str::to_string).collect();
    let known: BTreeSet<&str> = Config::flag_names().collect();
    for arg in &args {
        let name = arg.trim_start_matches("--").split('=').next().unwrap_or("");
        if !arg.starts_with("--") || !known.contains(name) {
            return Err(format!("argument {arg:?} is not an ingressd flag"));
        }
    }
    let in_cluster = |key: &str| match key {
        "KUBERNETES_SERVICE_HOST" => Some("10.96.0.1".to_string()),
        "KUBERNETES_SERVICE_PORT" => Some("443".to_string()),
        _ => None,
    };
    let config = match Config::parse(args.clone(), &in_cluster) {
        Ok(Command::Run(config)) => config,
        Ok(other) => return Err(format!("the args make ingressd do {other:?} instead of running")),
        Err(e) => return Err(format!("ingressd refuses the args: {e}")),
    };
    expect_eq("--ingress-class", Some(&config.ingress_class), class.name())?;
    expect_eq("IngressClass spec.controller", class.value.str_at(&["spec", "controller"]), &config.controller_name)?;
    let grace = seconds("terminationGracePeriodSeconds", pod.str_at(&["terminationGracePeriodSeconds"]))?;
    let drain = (config.shutdown_delay + config.shutdown_grace).as_secs_f64();
    if (grace as f64) <= drain || grace <= 35 {
        return Err(format!("terminationGracePeriodSeconds {grace} must exceed shutdown-delay + shutdown-grace ({drain} s) and 35"));
    }

    // Placement and identity.
    expect_eq("hostNetwork", pod.str_at(&["hostNetwork"]), "true")?;
    expect_eq("dnsPolicy", pod.str_at(&["dnsPolicy"]), "ClusterFirstWithHostNet")?;
    expect_eq("serviceAccountName", pod.str_at(&["serviceAccountName"]), account.name())?;
    // A label a node must be given first would schedule nothing, silently,
    // on a cluster that lacks it: only labels every node carries.
    if let Some(Value::Map(entries)) = pod.at(&["nodeSelector"]) {
        for (label, _) in entries {
            if !["kubernetes.io/os", "kubernetes.io/arch"].contains(&label.as_str()) {
                return Err(format!("nodeSelector {label} is a label nodes lack until someone sets it; edge-nodes.yaml is the opt-in"));
            }
        }
    }
    if pod.list_at(&["tolerations"]).is_empty() {
        return Err("no tolerations for edge nodes".into());
    }
    let selector = daemonset.at(&["spec", "selector", "matchLabels"]).ok_or("no selector.matchLabels")?;
    if let Value::Map(labels) = selector {
        for (key, value) in labels {
            if daemonset.at(&["spec", "template", "metadata", "labels", key]) != Some(value) {
                return Err(format!("the pod template lacks the selector label {key}"));
            }
        }
    }
    expect_eq("updateStrategy.type", daemonset.str_at(&["spec", "updateStrategy", "type"]), "RollingUpdate")?;
    expect_eq("maxUnavailable", daemonset.str_at(&["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"]), "1")?;
    expect_eq("maxSurge", daemonset.str_at(&["spec", "updateStrategy", "rollingUpdate", "maxSurge"]), "0")?;

    // The downward API.
    for (variable, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let env = container.list_at(&["env"]).iter().find(|e| e.str_at(&["name"]) == Some(variable));
        expect_eq(variable, env.and_then(|e| e.str_at(&["valueFrom", "fieldRef", "fieldPath"])), field)?;
    }

    // Probes on the admin port, ports declared as ingressd listens.
    let admin_port = config.admin_addr.port().to_string();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        expect_eq(probe, container.str_at(&[probe, "httpGet", "path"]), path)?;
        expect_eq(&format!("{probe} port"), container.str_at(&[probe, "httpGet", "port"]), &admin_port)?;
    }
    for (name, addr) in [("http", config.http_addr), ("https", config.https_addr), ("admin", config.admin_addr)] {
        let port = container.list_at(&["ports"]).iter().find(|p| p.str_at(&["name"]) == Some(name));
        expect_eq(&format!("containerPort {name}"), port.and_then(|p| p.str_at(&["containerPort"])), &addr.port().to_string())?;
    }

    // Resources.
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            if container.str_at(&["resources", bound, resource]).is_none() {
                return Err(format!("resources.{bound}.{resource} is not set"));
            }
        }
    }

    // Locked down: the image's non-root user, read-only, RuntimeDefault
    // seccomp, one capability in the bounding set. Escalation is allowed
    // because the binary's file capability is one (tests/it/low_ports.rs shows
    // these rules bind port 80, and that without it they do not).
    let security = container.at(&["securityContext"]).ok_or("the container has no securityContext")?;
    let either = |key: &str| security.str_at(&[key]).or(pod.str_at(&["securityContext", key]));
    expect_eq("readOnlyRootFilesystem", security.str_at(&["readOnlyRootFilesystem"]), "true")?;
    expect_eq("allowPrivilegeEscalation", security.str_at(&["allowPrivilegeEscalation"]), "true")?;
    if security.str_at(&["privileged"]) == Some("true") {
        return Err("the container is privileged".into());
    }
    let seccomp = security.str_at(&["seccompProfile", "type"]).or(pod.str_at(&["securityContext", "seccompProfile", "type"]));
    expect_eq("seccompProfile.type", seccomp, "RuntimeDefault")?;
    expect_eq("runAsNonRoot", either("runAsNonRoot"), "true")?;
    let (user, group) = image_user();
    expect_eq("runAsUser (the image's USER)", either("runAsUser"), &user)?;
    expect_eq("runAsGroup (the image's USER)", either("runAsGroup"), &group)?;
    let caps = |key: &str| -> Vec<&str> { security.list_at(&["capabilities", key]).iter().filter_map(Value::as_str).collect() };
    if caps("drop") != ["ALL"] {
        return Err(format!("capabilities.drop is {:?}, expected [ALL]", caps("drop")));
    }
    if caps("add") != ["NET_BIND_SERVICE"] {
        return Err(format!("capabilities.add is {:?}, expected only NET_BIND_SERVICE", caps("add")));
    }
    if container.str_at(&["image"]).is_none_or(str::is_empty) {
        return Err("the container has no image".into());
    }
    Ok(())
}

/// The numeric user and group of Dockerfile.scratch's USER, which the pod
/// must run as (the same in every stage that sets one).
fn image_user() -> (String, String) {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.scratch")).expect("Dockerfile.scratch");
    let users: BTreeSet<&str> = dockerfile.lines().filter_map(|l| l.strip_prefix("USER ")).map(str::trim).collect();
    assert_eq!(users.len(), 1, "one USER in Dockerfile.scratch: {users:?}");
    let user = users.into_iter().next().unwrap_or_default();
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    (uid.to_string(), gid.to_string())
}

fn check_all(files: &[(String, String)]) -> Result<(), String> {
    let resources = resource_files(files)?;
    let docs = parse_files(&resources)?;
    check_order(&resources, &docs)?;
    check_rbac(&docs)?;
    check_daemonset(&docs)?;
    check_image(files, &docs)
}

#[test]
fn the_manifests_are_ordered_least_privileged_and_locked_down() {
    let files = yaml_files(&manifests_dir());
    if let Err(problem) = check_all(&files) {
        panic!("manifests/: {problem}");
    }
}

/// Each mutation breaks one rule in one file; the checks must catch all of
/// them, or they would wave a broken deployment through.
#[test]
fn broken_manifests_are_refused() {
    let good = yaml_files(&manifests_dir());
    let mutations: &[(&str, &str, &str, &str)] = &[
        ("02-clusterrole.yaml", "      - watch\n  - apiGroups:\n      - networking.k8s.io", "      - watch\n      - delete\n  - apiGroups:\n      - networking.k8s.io", "grants"),
        ("02-clusterrole.yaml", "      - endpointslices", "      - endpoints", "misses"),
        ("02-clusterrole.yaml", "      - secrets\n", "      - secrets\n      - \"*\"\n", "wildcard"),
        ("02-clusterrole.yaml", "      - ingresses/status\n    verbs:\n      - update", "      - ingresses/status\n    verbs:\n      - patch", "status"),
        ("04-role.yaml", "      - update", "      - update\n      - delete", "the Role grants"),
        ("03-clusterrolebinding.yaml", "  name: ingressd\nsubjects", "  name: cluster-admin\nsubjects", "does not refer"),
        ("07-daemonset.yaml", "--ingress-class=ingressd", "--ingress-klass=ingressd", "not an ingressd flag"),
        ("07-daemonset.yaml", "--http-addr=0.0.0.0:80", "--http-addr=localhost:80", "refuses the args"),
        ("07-daemonset.yaml", "--ingress-class=ingressd", "--ingress-class=nginx", "--ingress-class"),
        ("07-daemonset.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds"),
        ("07-daemonset.yaml", "--shutdown-grace=30", "--shutdown-grace=60", "terminationGracePeriodSeconds"),
        ("07-daemonset.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"),
        ("07-daemonset.yaml", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation"),
        ("07-daemonset.yaml", "runAsUser: 65532", "runAsUser: 0", "runAsUser"),
        ("07-daemonset.yaml", "runAsGroup: 65532", "runAsGroup: 1000", "runAsGroup"),
        ("07-daemonset.yaml", "type: RuntimeDefault", "type: Unconfined", "seccompProfile"),
        ("07-daemonset.yaml", "            runAsNonRoot: true", "            runAsNonRoot: true\n            privileged: true", "privileged"),
        ("07-daemonset.yaml", "        kubernetes.io/os: linux", "        node-role.kubernetes.io/edge: \"\"", "nodeSelector"),
        ("07-daemonset.yaml", "          image: ingressd", "          image: ghcr.io/ingressd/ingressd:0.1.0", "image"),
        ("kustomization.yaml", "    newTag: 0.1.0", "    newTag: latest", "newTag"),
        ("kustomization.yaml", "    newName: registry.example.com/ingressd", "    newName: ghcr.io/ingressd/ingressd", "placeholder"),
        ("kustomization.yaml", "  - 05-rolebinding.yaml\n", "", "never applied"),
        ("07-daemonset.yaml", "                - NET_BIND_SERVICE", "                - NET_BIND_SERVICE\n                - NET_ADMIN", "capabilities.add"),
        ("07-daemonset.yaml", "                - ALL", "                - NET_RAW", "capabilities.drop"),
        ("07-daemonset.yaml", "maxSurge: 0", "maxSurge: 1", "maxSurge"),
        ("07-daemonset.yaml", "dnsPolicy: ClusterFirstWithHostNet", "dnsPolicy: ClusterFirst", "dnsPolicy"),
        ("07-daemonset.yaml", "path: /readyz", "path: /healthz", "readinessProbe"),
        ("07-daemonset.yaml", "fieldPath: metadata.namespace", "fieldPath: spec.nodeName", "POD_NAMESPACE"),
        ("07-daemonset.yaml", "              memory: 512Mi", "", "resources.limits.memory"),
        ("06-ingressclass.yaml", "controller: ingressd.io/ingress-controller", "controller: k8s.io/ingress-nginx", "spec.controller"),
        ("01-serviceaccount.yaml", "  namespace: ingressd", "  namespace: default", "namespace"),
        ("07-daemonset.yaml", "kind: DaemonSet", "kind: DaemonSet\nspec: {}", "flow"),
    ];
    for (file, from, to, expected) in mutations {
        let mut files = good.clone();
        let entry = files.iter_mut().find(|(name, _)| name == file).unwrap_or_else(|| panic!("no {file}"));
        assert!(entry.1.contains(from), "mutation anchor {from:?} is not in {file}");
        entry.1 = entry.1.replacen(from, to, 1);
        match check_all(&files) {
            Ok(()) => panic!("{file} with {from:?} -> {to:?} passed the checks"),
            Err(problem) => assert!(problem.contains(expected), "{file}: {from:?} -> {to:?}: got {problem:?}, expected it to mention {expected:?}"),
        }
    }
    let mut reordered = good.clone();
    let kustomization = reordered.iter_mut().find(|(name, _)| name == KUSTOMIZATION).expect("kustomization.yaml");
    kustomization.1 = kustomization.1.replacen("  - 00-namespace.yaml\n  - 01-serviceaccount.yaml", "  - 01-serviceaccount.yaml\n  - 00-namespace.yaml", 1);
    let problem = check_all(&reordered).expect_err("swapped resources must be refused");
    assert!(problem.contains("kinds in apply order"), "{problem}");
}

/// The opt-in for edge nodes patches the DaemonSet the kustomization applies
/// and keeps the label every node has.
#[test]
fn the_edge_nodes_patch_selects_labelled_nodes() {
    let files = yaml_files(&manifests_dir());
    let (_, text) = files.iter().find(|(name, _)| name == "edge-nodes.yaml").expect("edge-nodes.yaml");
    let kustomization = &files.iter().find(|(name, _)| name == KUSTOMIZATION).expect("kustomization").1;
    assert!(kustomization.contains("#   - path: edge-nodes.yaml"), "kustomization.yaml shows how to enable the patch");
    let patch = yaml::parse(text).expect("yaml").pop().expect("one document");
    assert_eq!(patch.str_at(&["kind"]), Some("DaemonSet"));
    assert_eq!(patch.str_at(&["metadata", "name"]), Some("ingressd"));
    assert_eq!(patch.str_at(&["metadata", "namespace"]), Some(NAMESPACE));
    let selector = patch.at(&["spec", "template", "spec", "nodeSelector"]).expect("nodeSelector");
    assert_eq!(selector.str_at(&["node-role.kubernetes.io/edge"]), Some(""));
    assert_eq!(selector.str_at(&["kubernetes.io/os"]), Some("linux"));
}

#[test]
fn the_example_app_is_served_by_the_ingressd_class() {
    let docs = parse_files(&yaml_files(&manifests_dir().join("examples"))).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = docs.iter().map(Doc::kind).collect();
    for kind in ["Deployment", "Service", "Ingress"] {
        assert!(kinds.contains(&kind), "examples lack a {kind}: {kinds:?}");
    }
    let ingress = find(&docs, "Ingress").expect("one Ingress");
    assert_eq!(ingress.value.str_at(&["spec", "ingressClassName"]), Some("ingressd"));
    let service = find(&docs, "Service").expect("one Service");
    let backend = &ingress.value.list_at(&["spec", "rules"])[0].list_at(&["http", "paths"])[0];
    assert_eq!(backend.str_at(&["backend", "service", "name"]), Some(service.name()));
    let deployment = find(&docs, "Deployment").expect("one Deployment");
    let selector = service.value.at(&["spec", "selector"]).expect("service selector");
    assert_eq!(deployment.value.at(&["spec", "template", "metadata", "labels"]), Some(selector));
}

/// The demo and smoke scripts start the fake API server with these objects;
/// they must decode as ingressd decodes them and hang together, or the demo
/// fails for a reason that has nothing to do with ingressd.
#[test]
fn the_demo_objects_decode_and_refer_to_each_other() {
    use ingressd::kube::objects::{EndpointSlice, Ingress, IngressClass, Service};

    let text = std::fs::read_to_string(manifests_dir().join("examples/demo-objects.json")).expect("demo-objects.json");
    let list: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    let of_kind = |kind: &'static str| items.iter().filter(move |i| i["kind"] == kind).cloned();
    let classes: Vec<IngressClass> = of_kind("IngressClass").map(|v| serde_json::from_value(v).expect("IngressClass")).collect();
    let services: Vec<Service> = of_kind("Service").map(|v| serde_json::from_value(v).expect("Service")).collect();
    let slices: Vec<EndpointSlice> = of_kind("EndpointSlice").map(|v| serde_json::from_value(v).expect("EndpointSlice")).collect();
    let ingresses: Vec<Ingress> = of_kind("Ingress").map(|v| serde_json::from_value(v).expect("Ingress")).collect();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0].spec.controller.as_deref(), Some("ingressd.io/ingress-controller"));
    let (ours, others): (Vec<&Ingress>, Vec<&Ingress>) =
        ingresses.iter().partition(|i| i.spec.ingress_class_name.as_deref() == Some(classes[0].metadata.name.as_str()));
    assert!(ours.len() >= 2, "the demo needs a host/path Ingress and a wildcard one");
    assert!(!others.is_empty(), "the demo shows that an Ingress of another class is ignored");
    for ingress in &ingresses {
        for path in ingress.spec.rules.iter().filter_map(|r| r.http.as_ref()).flat_map(|h| &h.paths) {
            let backend = path.backend.service.as_ref().expect("service backend");
            let service = services
                .iter()
                .find(|s| s.metadata.name == backend.name && s.metadata.namespace == ingress.metadata.namespace)
                .unwrap_or_else(|| panic!("Ingress {} names a missing Service {}", ingress.metadata.name, backend.name));
            assert!(
                service.spec.ports.iter().any(|p| Some(p.port) == backend.port.number || p.name == backend.port.name),
                "Service {} has no port {:?}",
                service.metadata.name,
                backend.port
            );
        }
    }
    for service in &services {
        let slice = slices
            .iter()
            .find(|s| s.service_name() == Some(service.metadata.name.as_str()))
            .unwrap_or_else(|| panic!("Service {} has no EndpointSlice", service.metadata.name));
        assert_eq!(slice.address_type, "IPv4");
        assert!(slice.endpoints.iter().all(|e| e.addresses.iter().all(|a| a.parse::<std::net::Ipv4Addr>().is_ok())), "endpoints must be IPs");
        let names: Vec<Option<&str>> = service.spec.ports.iter().map(|p| p.name.as_deref()).collect();
        assert!(slice.ports.iter().all(|p| names.contains(&p.name.as_deref())), "slice port names must match the Service's");
    }
    assert!(ingresses.iter().any(|i| i.spec.rules.iter().any(|r| r.host.as_deref().is_some_and(|h| h.starts_with("*.")))));
    assert!(ingresses.iter().any(|i| i.spec.tls.iter().any(|t| t.secret_name.as_deref() == Some("demo-tls"))));
}
