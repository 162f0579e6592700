//! `ingressd migrate-check`: what moving a cluster's Ingresses from
//! ingress-nginx to ingressd would change, Ingress by Ingress.
//!
//! It reads the same annotation catalogue the controller reports from, so
//! the check and the running proxy cannot disagree about an annotation. The
//! input is either the API server (the controller's own flags) or a file
//! from `kubectl get ingress -A -o json` (optionally with IngressClasses in
//! the same list), so it runs on a laptop without cluster access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use crate::annotations::secrets::{secret_key, SECRET_ANNOTATIONS};
use crate::annotations::{self, catalogue::Support};
use crate::store::Snapshot;
use crate::config::{Command, Config};
use crate::kube::client::ApiClient;
use crate::kube::objects::{Ingress, IngressClass, StringMap};
use crate::routes::{served_ingresses, RouteConfig};

const USAGE: &str = "usage: ingressd migrate-check [--file PATH|-] [controller flags: --apiserver, --token-file, --ca-file, --watch-namespace, --ingress-class, --controller-name, --watch-ingress-without-class]

Reads every Ingress (from the API server, or from a file made by
`kubectl get ingress -A -o json`, `-` for standard input) and prints, per
Ingress, each nginx.ingress.kubernetes.io annotation as honoured, ignored
or refused, the ingress-nginx defaults ingressd does not apply, and
Ingresses whose class ingressd would not serve; then a summary.
Exit status: 0 nothing to change, 1 something ignored, refused or not
served, 2 the input could not be read.
";

/// What one annotation on one Ingress becomes under ingressd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationFinding {
    pub key: String,
    pub support: Support,
}

/// The check's result for one Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressFinding {
    pub ingress: String,
    pub annotations: Vec<AnnotationFinding>,
    /// Behaviour ingress-nginx had without being asked and ingressd does
    /// not: its default HTTPS redirect, reading Secrets of any namespace.
    pub defaults: Vec<String>,
    /// Why ingressd would not serve it, and what to change; `None` when it would.
    pub class: Option<String>,
}

impl IngressFinding {
    fn needs_attention(&self) -> bool {
        self.class.is_some() || !self.defaults.is_empty() || self.annotations.iter().any(|a| a.support != Support::Honoured)
    }
}

/// Checks every Ingress against the catalogue and the class rules `config` sets.
pub fn check(ingresses: &[Ingress], classes: &[IngressClass], config: &RouteConfig) -> Vec<IngressFinding> {
    let mut snapshot = Snapshot::default();
    for class in classes {
        snapshot.insert(crate::kube::Object::IngressClass(class.clone()));
    }
    for ingress in ingresses {
        snapshot.insert(crate::kube::Object::Ingress(ingress.clone()));
    }
    let served: Vec<_> = served_ingresses(&snapshot, config).into_iter().map(|i| i.metadata.key()).collect();
    snapshot
        .ingresses
        .values()
        .map(|ingress| IngressFinding {
            ingress: ingress.metadata.key().to_string(),
            annotations: annotation_findings(&ingress.metadata.annotations),
            defaults: default_differences(ingress),
            class: (!served.contains(&ingress.metadata.key())).then(|| class_advice(ingress, config)),
        })
        .collect()
}

fn annotation_findings(annotations: &StringMap) -> Vec<AnnotationFinding> {
    annotations
        .keys()
        .filter_map(|key| Some(AnnotationFinding { key: key.to_string(), support: annotations::support(key)? }))
        .collect()
}

fn default_differences(ingress: &Ingress) -> Vec<String> {
    let mut found = Vec::new();
    let redirect_asked = ["ssl-redirect", "force-ssl-redirect"]
        .iter()
        .any(|name| annotations::value(&ingress.metadata.annotations, name).is_some());
    if !ingress.spec.tls.is_empty() && !redirect_asked {
        found.push(
            "ingress-nginx redirected plain HTTP to HTTPS for this Ingress's TLS hosts by default; ingressd serves plain HTTP \
             unless asked: add nginx.ingress.kubernetes.io/ssl-redirect: \"true\" to keep the redirect"
                .to_string(),
        );
    }
    for name in SECRET_ANNOTATIONS {
        let Some(text) = annotations::value(&ingress.metadata.annotations, name) else { continue };
        if let Err(why) = secret_key(&ingress.metadata.namespace, text) {
            found.push(format!("{name}: {why}; ingressd fails closed on the paths that need it: name a Secret in the Ingress's own namespace"));
        }
    }
    found
}

fn class_advice(ingress: &Ingress, config: &RouteConfig) -> String {
    let fix = format!(
        "set spec.ingressClassName: {} (or give that IngressClass spec.controller: {})",
        config.ingress_class, config.controller_name
    );
    match (ingress.spec.ingress_class_name.as_deref().filter(|c| !c.is_empty()), ingress.metadata.annotations.get(crate::routes::class::LEGACY_CLASS_ANNOTATION)) {
        (Some(class), _) => format!("class {class:?} is not served by ingressd: {fix}"),
        (None, Some(legacy)) => format!("legacy class annotation {legacy:?} is not served by ingressd: {fix}"),
        (None, None) => format!("no class, and ingressd serves classless Ingresses only with --watch-ingress-without-class or a default IngressClass of its own: {fix}"),
    }
}

/// The report an operator reads, ending with a summary to paste into a ticket.
pub fn render(findings: &[IngressFinding]) -> String {
    let mut out = String::new();
    let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut not_applied: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    for finding in findings {
        out.push_str(&format!("{}\n", finding.ingress));
        if let Some(class) = &finding.class {
            out.push_str(&format!("  NOT SERVED  {class}\n"));
        }
        for a in &finding.annotations {
            let verdict = a.support.label();
            *verdicts.entry(verdict).or_default() += 1;
            match a.support.reason() {
                Some(reason) => {
                    out.push_str(&format!("  {verdict:<10}  {}: {reason}\n", a.key));
                    let name = a.key.rsplit('/').next().unwrap_or(&a.key).to_string();
                    not_applied.entry(name).or_insert((0, verdict)).0 += 1;
                }
                None => out.push_str(&format!("  {verdict:<10}  {}\n", a.key)),
            }
        }
        for d in &finding.defaults {
            out.push_str(&format!("  DEFAULT     {d}\n"));
        }
        if !finding.needs_attention() {
            out.push_str("  ok          nothing to change\n");
        }
    }
    let count = |f: &dyn Fn(&IngressFinding) -> bool| findings.iter().filter(|i| f(i)).count();
    out.push_str("\nSummary\n");
    out.push_str(&format!("- Ingresses checked: {}\n", findings.len()));
    out.push_str(&format!("- Ingresses needing attention: {}\n", count(&|i| i.needs_attention())));
    out.push_str(&format!("- Ingresses whose class ingressd does not serve: {}\n", count(&|i| i.class.is_some())));
    out.push_str(&format!("- Ingresses relying on ingress-nginx defaults: {}\n", count(&|i| !i.defaults.is_empty())));
    out.push_str(&format!(
        "- Annotations: {} honoured, {} ignored, {} refused\n",
        verdicts.get("honoured").unwrap_or(&0),
        verdicts.get("ignored").unwrap_or(&0),
        verdicts.get("refused").unwrap_or(&0)
    ));
    for (name, (n, verdict)) in &not_applied {
        out.push_str(&format!("  - {name}: {verdict} on {n} Ingress{}\n", if *n == 1 { "" } else { "es" }));
    }
    out
}

/// 0 when nothing needs changing, 1 otherwise.
pub fn exit_status(findings: &[IngressFinding]) -> u8 {
    u8::from(findings.iter().any(IngressFinding::needs_attention))
}

/// Ingresses and IngressClasses from a `kubectl get -o json` document: a
/// List of either kind, or one object.
pub fn decode_dump(text: &str) -> Result<(Vec<Ingress>, Vec<IngressClass>), String> {
    let document: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = match document.get("items") {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("\"items\" is not a list".into()),
        None => vec![document],
    };
    let (mut ingresses, mut classes) = (Vec::new(), Vec::new());
    for (index, item) in items.into_iter().enumerate() {
        match item.get("kind").and_then(Value::as_str) {
            Some("Ingress") | None => ingresses.push(serde_json::from_value(item).map_err(|e| format!("item {index}: not an Ingress: {e}"))?),
            Some("IngressClass") => classes.push(serde_json::from_value(item).map_err(|e| format!("item {index}: not an IngressClass: {e}"))?),
            Some(other) => return Err(format!("item {index} is a {other}, not an Ingress or IngressClass")),
        }
    }
    Ok((ingresses, classes))
}

pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let mut file: Option<PathBuf> = None;
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--file=") {
            Some(path) => file = Some(path.into()),
            None if arg == "--file" => match args.next() {
                Some(path) => file = Some(path.into()),
                None => return usage_error("--file needs a path"),
            },
            None => rest.push(arg.clone()),
        }
    }
    let env = |k: &str| std::env::var(k).ok();
    let config = match Config::parse(rest, &env) {
        Ok(Command::Run(config)) => config,
        Ok(_) => return usage_error("unexpected --help, --version or subcommand among the flags"),
        Err(e) => return usage_error(&e.to_string()),
    };
    let input = match &file {
        Some(path) => read_file(path),
        None => read_api(&config),
    };
    match input {
        Ok((ingresses, classes)) => {
            let findings = check(&ingresses, &classes, &config.route_config());
            print!("{}", render(&findings));
            ExitCode::from(exit_status(&findings))
        }
        Err(e) => {
            eprintln!("ingressd migrate-check: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage_error(problem: &str) -> ExitCode {
    eprintln!("ingressd migrate-check: {problem}\n{USAGE}");
    ExitCode::from(2)
}

fn read_file(path: &Path) -> Result<(Vec<Ingress>, Vec<IngressClass>), String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    decode_dump(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_api(config: &Config) -> Result<(Vec<Ingress>, Vec<IngressClass>), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ApiClient::new(&config.apiserver, &config.ca_file, &config.token_file).map_err(|e| e.to_string())?;
    let ingresses_path = match &config.watch_namespace {
        Some(ns) => format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
        None => "/apis/networking.k8s.io/v1/ingresses".to_string(),
    };
    let ingresses = list_all(&client, &ingresses_path)?;
    let classes = list_all(&client, "/apis/networking.k8s.io/v1/ingressclasses")?;
    Ok((ingresses, classes))
}

/// Every item of a collection, page by page.
fn list_all<T: serde::de::DeserializeOwned>(client: &ApiClient, path: &str) -> Result<Vec<T>, String> {
    let mut items = Vec::new();
    let mut continue_token: Option<String> = None;
    loop {
        let query = match &continue_token {
            Some(token) => format!("?limit=500&continue={}", crate::kube::list::encode(token)),
            None => "?limit=500".to_string(),
        };
        let page = client.get_json(&format!("{path}{query}")).map_err(|e| format!("{path}: {e}"))?;
        let page_items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        for item in page_items {
            items.push(serde_json::from_value(item).map_err(|e| format!("{path}: {e}"))?);
        }
        continue_token = page.pointer("/metadata/continue").and_then(Value::as_str).filter(|c| !c.is_empty()).map(String::from);
        if continue_token.is_none() {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> RouteConfig {
        RouteConfig { ingress_class: "ingressd".into(), controller_name: "ingressd.io/ingress-controller".into(), ..RouteConfig::default() }
    }

    fn ingress(name: &str, class: Option<&str>, annotations: Value, tls: bool) -> Ingress {
        let mut spec = json!({"rules": [{"host": format!("{name}.example.com")}]});
        if let Some(class) = class {
            spec["ingressClassName"] = json!(class);
        }
        if tls {
            spec["tls"] = json!([{"hosts": [format!("{name}.example.com")], "secretName": name}]);
        }
        serde_json::from_value(json!({"metadata": {"namespace": "shop", "name": name, "annotations": annotations}, "spec": spec}))
            .expect("ingress")
    }

    #[test]
    fn each_annotation_gets_its_catalogue_verdict() {
        let findings = check(
            &[ingress(
                "cart",
                Some("ingressd"),
                json!({
                    "nginx.ingress.kubernetes.io/ssl-redirect": "true",
                    "nginx.ingress.kubernetes.io/server-snippet": "return 200;",
                    "nginx.ingress.kubernetes.io/proxy-buffering": "on",
                    "kubernetes.io/description": "not ours to judge",
                }),
                true,
            )],
            &[],
            &config(),
        );
        let verdicts: Vec<(&str, &str)> = findings[0].annotations.iter().map(|a| (a.key.as_str(), a.support.label())).collect();
        assert_eq!(
            verdicts,
            [
                ("nginx.ingress.kubernetes.io/proxy-buffering", "ignored"),
                ("nginx.ingress.kubernetes.io/server-snippet", "refused"),
                ("nginx.ingress.kubernetes.io/ssl-redirect", "honoured"),
            ]
        );
        assert!(findings[0].defaults.is_empty(), "the redirect was asked for");
        assert_eq!(exit_status(&findings), 1);
    }

    #[test]
    fn the_default_https_redirect_and_unserved_classes_are_flagged() {
        let findings = check(
            &[
                ingress("tls", Some("ingressd"), json!({}), true),
                ingress("nginx", Some("nginx"), json!({}), false),
                ingress("legacy", None, json!({"kubernetes.io/ingress.class": "nginx"}), false),
                ingress("clean", Some("ingressd"), json!({"ingressd.io/ssl-redirect": "false"}), true),
                ingress("borrow", Some("ingressd"), json!({"nginx.ingress.kubernetes.io/auth-secret": "kube-system/admin"}), false),
            ],
            &[],
            &config(),
        );
        let by_name = |name: &str| findings.iter().find(|f| f.ingress == format!("shop/{name}")).expect("finding");
        assert_eq!(by_name("tls").defaults.len(), 1);
        assert!(by_name("borrow").defaults.iter().any(|d| d.contains("auth-secret") && d.contains("another namespace")), "{:?}", by_name("borrow"));
        assert!(by_name("nginx").class.as_deref().is_some_and(|c| c.contains("class \"nginx\"")), "{:?}", by_name("nginx").class);
        assert!(by_name("legacy").class.as_deref().is_some_and(|c| c.contains("legacy class annotation")));
        assert!(!by_name("clean").needs_attention(), "{:?}", by_name("clean"));
        assert_eq!(exit_status(&[by_name("clean").clone()]), 0);
        let report = render(&findings);
        assert!(report.contains("Ingresses whose class ingressd does not serve: 2"), "{report}");
        assert!(report.contains("Ingresses relying on ingress-nginx defaults: 2"), "{report}");
    }

    #[test]
    fn an_ingress_class_with_our_controller_makes_its_ingresses_served() {
        let class: IngressClass =
            serde_json::from_value(json!({"metadata": {"name": "nginx"}, "spec": {"controller": "ingressd.io/ingress-controller"}})).expect("class");
        let findings = check(&[ingress("nginx", Some("nginx"), json!({}), false)], &[class], &config());
        assert_eq!(findings[0].class, None);
    }

    #[test]
    fn dumps_are_lists_or_single_objects_and_bad_ones_are_errors() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"namespace": "a", "name": "x"}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"}},
        ]});
        let (ingresses, classes) = decode_dump(&list.to_string()).expect("list");
        assert_eq!((ingresses.len(), classes.len()), (1, 1));
        let (single, _) = decode_dump(&json!({"kind": "Ingress", "metadata": {"name": "y"}}).to_string()).expect("single");
        assert_eq!(single[0].metadata.name, "y");
        for bad in ["", "{", "[1]", r#"{"items": 3}"#, r#"{"items": [{"kind": "Pod"}]}"#, r#"{"items": [{"kind": "Ingress", "spec": 7}]}"#] {
            assert!(decode_dump(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
