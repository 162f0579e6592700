//! The route inspector: `GET /debug/routes` on the admin address, and
//! `ingressd routes --admin-addr ADDR` which prints it as a table.
//!
//! It shows what the proxy does with the current table — hosts, paths, which
//! Ingress each came from, backends with their ready endpoints, the TLS
//! Secret per host, and claims that lost a conflict — and never any key
//! material (only Secret names and expiry times).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::annotations;
use crate::annotations::source_range::SourceRanges;
use crate::cache::Generation;
use crate::kube::objects::ObjectKey;
use crate::prometheus::{self, Type};
use crate::routes::{Backend, Route};

/// An annotation a served Ingress carries that ingressd does not apply.
pub struct Unapplied<'a> {
    pub ingress: &'a ObjectKey,
    pub key: &'a str,
    pub support: annotations::catalogue::Support,
}

/// Every annotation the Ingresses behind the current routes carry and
/// ingressd does not apply, by Ingress. Found from the table (not from the
/// class rules), so the inspector and the metric count exactly what serves.
pub fn unapplied_annotations(generation: &Generation) -> Vec<Unapplied<'_>> {
    let mut serving: Vec<&ObjectKey> = generation
        .routes
        .routes()
        .into_iter()
        .chain(generation.routes.default_backend())
        .flat_map(|r| std::iter::once(&r.ingress).chain(r.canary.as_ref().map(|c| &c.route.ingress)))
        .filter(|key| !key.name.is_empty())
        .collect();
    serving.sort();
    serving.dedup();
    serving
        .into_iter()
        .filter_map(|key| Some((key, generation.snapshot.ingresses.get(key)?)))
        .flat_map(|(ingress, object)| {
            annotations::unapplied(&object.metadata.annotations)
                .into_iter()
                .map(move |(key, support)| Unapplied { ingress, key, support })
        })
        .collect()
}

/// The JSON document served at `/debug/routes`.
pub fn routes_json(generation: &Generation) -> Value {
    let secrets: HashMap<String, String> = generation.certs.entries().filter_map(|e| Some((e.host?, e.secret.to_string()))).collect();
    let tls_secret = |host: &str| -> Option<String> {
        secrets.get(host).cloned().or_else(|| {
            let parent = host.split_once('.').map(|(_, p)| p)?;
            secrets.get(format!("*.{parent}").as_str()).cloned()
        })
    };
    let endpoints_of = |backend: &Backend| match backend {
        Backend::Upstreams(u) => (u.iter().map(|u| u.authority.clone()).collect::<Vec<_>>(), None),
        Backend::Unavailable(reason) => (Vec::new(), Some(reason.clone())),
    };
    let route = |r: &Route| {
        let (endpoints, error) = endpoints_of(&r.backend);
        let canary = r.canary.as_ref().map(|c| {
            let (endpoints, error) = endpoints_of(&c.route.backend);
            json!({"ingress": c.route.ingress.to_string(), "service": c.route.service, "port": c.route.service_port, "endpoints": endpoints, "backendError": error})
        });
        json!({
            "host": r.host,
            "path": r.path,
            "pathType": r.path_type.map(|t| t.as_str()),
            "ingress": r.ingress.to_string(),
            "service": r.service,
            "port": r.service_port,
            "endpoints": endpoints,
            "backendError": error,
            "sslRedirect": r.ssl_redirect,
            "tlsSecret": if r.host.is_empty() { None } else { tls_secret(&r.host) },
            "rewriteTarget": r.rewrite.as_ref().map(|w| w.target()),
            "canary": canary,
            "failClosed": fail_closed(r).map(|(annotation, why)| format!("{annotation}: {why}")),
        })
    };
    let conflicts: Vec<Value> = generation
        .routes
        .conflicts()
        .iter()
        .map(|c| {
            json!({
                "host": c.host, "path": c.path, "pathType": c.path_type.map(|t| t.as_str()),
                "winner": c.winner.to_string(), "loser": c.loser.to_string(),
            })
        })
        .collect();
    let certificates: Vec<Value> = generation
        .certs
        .entries()
        .map(|e| json!({"host": e.host, "secret": e.secret.to_string(), "notAfter": e.not_after}))
        .collect();
    let unapplied: Vec<Value> = unapplied_annotations(generation)
        .iter()
        .map(|u| json!({"ingress": u.ingress.to_string(), "annotation": u.key, "status": u.support.label(), "reason": u.support.reason()}))
        .collect();
    json!({
        "routes": generation.routes.routes().into_iter().filter(|r| !r.is_default_backend()).map(route).collect::<Vec<_>>(),
        "unappliedAnnotations": unapplied,
        "defaultBackend": generation.routes.default_backend().map(route),
        "conflicts": conflicts,
        "certificates": certificates,
    })
}

/// `ingressd_ingress_annotations_ignored{annotation}`: how many serving
/// Ingresses carry each annotation ingressd does not apply (refused snippets
/// and unknown names included). Label values are annotation keys from
/// Ingress objects, never client input.
pub fn write_annotation_metrics(generation: &Generation, out: &mut String) {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for u in unapplied_annotations(generation) {
        *counts.entry(u.key).or_default() += 1;
    }
    prometheus::header(
        out,
        "ingressd_ingress_annotations_ignored",
        Type::Gauge,
        "Serving Ingresses carrying each annotation ingressd does not apply (ignored, refused or unknown).",
    );
    for (annotation, count) in counts {
        prometheus::sample(out, "ingressd_ingress_annotations_ignored", &[("annotation", annotation)], count);
    }
}

/// The security annotation whose bad value makes the route refuse every
/// request (403), and why.
fn fail_closed(route: &Route) -> Option<(&'static str, &str)> {
    match route.policy.as_ref()?.source_ranges.as_deref()? {
        SourceRanges::Invalid { annotation, why } => Some((annotation, why)),
        SourceRanges::Lists { .. } => None,
    }
}

/// `ingressd_ingress_annotations_invalid{annotation}`: how many serving
/// Ingresses have a bad value for a security annotation, which makes their
/// paths refuse every request instead of leaving it out.
pub fn write_invalid_annotation_metrics(generation: &Generation, out: &mut String) {
    let mut seen: Vec<(&ObjectKey, &str)> = generation
        .routes
        .routes()
        .into_iter()
        .chain(generation.routes.default_backend())
        .filter_map(|r| Some((&r.ingress, fail_closed(r)?.0)))
        .collect();
    seen.sort();
    seen.dedup();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, annotation) in seen {
        *counts.entry(annotation).or_default() += 1;
    }
    const NAME: &str = "ingressd_ingress_annotations_invalid";
    prometheus::header(out, NAME, Type::Gauge, "Serving Ingresses whose security annotation is invalid, so their paths answer 403 (fail closed).");
    for (annotation, count) in counts {
        prometheus::sample(out, NAME, &[("annotation", annotation)], count);
    }
}

/// Renders the inspector document as a table for a terminal.
pub fn table(document: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) if s.is_empty() => "*".to_string(),
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut rows = vec![["HOST", "PATH", "TYPE", "INGRESS", "BACKEND", "READY", "TLS"].map(String::from).to_vec()];
    let mut add = |r: &Value| {
        let endpoints = r["endpoints"].as_array().map(Vec::len).unwrap_or(0);
        let ready = match r["backendError"].as_str() {
            Some(error) => format!("0 ({error})"),
            None => endpoints.to_string(),
        };
        rows.push(vec![
            text(&r["host"]),
            if r["path"].as_str() == Some("") { "(default)".into() } else { text(&r["path"]) },
            text(&r["pathType"]),
            text(&r["ingress"]),
            format!("{}:{}", text(&r["service"]), text(&r["port"])),
            ready,
            text(&r["tlsSecret"]),
        ]);
    };
    for r in document["routes"].as_array().into_iter().flatten() {
        add(r);
    }
    if !document["defaultBackend"].is_null() {
        add(&document["defaultBackend"]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let unapplied = document["unappliedAnnotations"].as_array().cloned().unwrap_or_default();
    if !unapplied.is_empty() {
        out.push_str("\nannotations not applied:\n");
        for u in unapplied {
            out.push_str(&format!("  {} {}: {} ({})\n", text(&u["ingress"]), text(&u["annotation"]), text(&u["status"]), text(&u["reason"])));
        }
    }
    let conflicts = document["conflicts"].as_array().cloned().unwrap_or_default();
    if !conflicts.is_empty() {
        out.push_str("\nconflicts (the older Ingress wins):\n");
        for c in conflicts {
            out.push_str(&format!(
                "  {}{} {}: {} wins over {}\n",
                text(&c["host"]),
                text(&c["path"]),
                text(&c["pathType"]),
                text(&c["winner"]),
                text(&c["loser"])
            ));
        }
    }
    out
}

const ROUTES_HELP: &str = "Prints the routes a running ingressd serves, read from its /debug/routes.\n\
IP:PORT is its --admin-addr as seen from here: /debug/routes answers loopback\n\
clients only, so run this on the node, e.g.\n\
\n  kubectl -n ingressd exec ds/ingressd -- /ingressd routes --admin-addr 127.0.0.1:10254";

/// `ingressd routes --admin-addr ADDR`.
pub fn main(args: &[String]) -> ExitCode {
    let usage = "usage: ingressd routes --admin-addr IP:PORT";
    let addr = match args {
        [flag, value] if flag == "--admin-addr" => value.clone(),
        [single] if single.starts_with("--admin-addr=") => single["--admin-addr=".len()..].to_string(),
        [help] if help == "--help" || help == "-h" => {
            println!("{usage}\n\n{ROUTES_HELP}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("ingressd routes: invalid --admin-addr {addr:?}: expected IP:PORT");
        return ExitCode::from(2);
    };
    match fetch(addr) {
        Ok(document) => {
            print!("{}", table(&document));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ingressd routes: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(addr: SocketAddr) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(format!("http://{addr}/debug/routes")).call().map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("/debug/routes answered {}", response.status()));
    }
    let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("not inspector JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::cache::{compile, CompileConfig};
    use crate::kube::objects::{Ingress, ObjectMeta};
    use crate::routes::RouteConfig;
    use crate::store::Snapshot;

    fn generation() -> Generation {
        let ingress: Ingress = serde_json::from_value(json!({
            "metadata": {"namespace": "web", "name": "site", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"ingressClassName": "ingressd", "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "missing", "port": {"number": 80}}}}]}}]}
        }))
        .expect("ingress");
        let mut later = ingress.clone();
        later.metadata = ObjectMeta { namespace: "web".into(), name: "late".into(), creation_timestamp: "2026-02-01T00:00:00Z".into(), ..Default::default() };
        let mut snapshot = Snapshot::default();
        snapshot.insert(crate::kube::Object::Ingress(ingress));
        snapshot.insert(crate::kube::Object::Ingress(later));
        let routes = RouteConfig { ingress_class: "ingressd".into(), controller_name: "x".into(), ..Default::default() };
        compile(&Arc::new(snapshot), &CompileConfig { routes, ..Default::default() }, &Generation::default())
    }

    #[test]
    fn the_document_lists_routes_backends_and_conflicts() {
        let document = routes_json(&generation());
        let routes = document["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0]["host"], "shop.example.com");
        assert_eq!(routes[0]["pathType"], "Prefix");
        assert_eq!(routes[0]["ingress"], "web/site");
        assert!(routes[0]["backendError"].is_string(), "a missing Service is shown");
        let conflicts = document["conflicts"].as_array().expect("conflicts");
        assert_eq!(conflicts[0]["winner"], "web/site");
        assert_eq!(conflicts[0]["loser"], "web/late");
        let text = table(&document);
        assert!(text.starts_with("HOST"), "{text}");
        assert!(text.contains("shop.example.com") && text.contains("web/late"), "{text}");
    }
}
