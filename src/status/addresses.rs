//! Which addresses ingressd publishes: the `--publish-status-address`
//! values, or the host IPs of the nodes where its pods run and are ready.
//! Pure: the pod watch loop in `pods.rs` feeds watch lines into [`PodSet`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

use crate::kube::objects::{IngressLoadBalancerIngress, ObjectKey, ObjectMeta};
use crate::kube::watch_line::Status;

/// `{"ip": ..}` for an IP address, `{"hostname": ..}` for anything else;
/// sorted and deduplicated so equal sets compare equal.
pub fn from_publish_flag(values: &[String]) -> Vec<IngressLoadBalancerIngress> {
    let set: BTreeSet<_> = values
        .iter()
        .map(|value| match value.parse::<IpAddr>() {
            Ok(ip) => IngressLoadBalancerIngress { ip: Some(ip.to_string()), hostname: None },
            Err(_) => IngressLoadBalancerIngress { ip: None, hostname: Some(value.clone()) },
        })
        .collect();
    set.into_iter().collect()
}

/// A Pod as far as its node's address and readiness go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    pub phase: String,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    pub conditions: Vec<PodCondition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

impl Pod {
    /// The node IP this pod answers on, if it is Running and Ready.
    pub fn serving_host_ip(&self) -> Option<IpAddr> {
        let ready = self.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True");
        if self.status.phase != "Running" || !ready {
            return None;
        }
        self.status.host_ip.as_deref()?.parse().ok()
    }
}

/// A list response of Pods.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodList {
    metadata: ListMeta,
    items: Vec<Pod>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ListMeta {
    resource_version: String,
}

/// One watch line, loosely: the object stays JSON until its type is known.
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// What the watch loop does after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep watching; resume from this resourceVersion if the watch ends.
    Continue(String),
    /// 410 or another ERROR event: list again.
    Relist(String),
}

/// ingressd's own pods, by key, as the last list and the watch since say.
#[derive(Debug, Default)]
pub struct PodSet {
    pods: BTreeMap<ObjectKey, Pod>,
}

impl PodSet {
    /// Replaces everything with a list response; returns its resourceVersion.
    pub fn replace(&mut self, list: serde_json::Value) -> Result<String, String> {
        let list: PodList = serde_json::from_value(list).map_err(|e| format!("undecodable pod list: {e}"))?;
        self.pods = list.items.into_iter().map(|pod| (pod.metadata.key(), pod)).collect();
        Ok(list.metadata.resource_version)
    }

    /// Applies one watch line. A line that does not decode is logged by the
    /// caller and skipped: the next list repairs anything it missed.
    pub fn apply(&mut self, line: &[u8]) -> Result<Step, String> {
        let event: RawEvent = serde_json::from_slice(line).map_err(|e| format!("malformed pod watch line: {e}"))?;
        if event.kind == "ERROR" {
            let status: Status = serde_json::from_value(event.object).unwrap_or_default();
            return Ok(Step::Relist(format!("{} {}", status.code, status.message)));
        }
        let pod: Pod = serde_json::from_value(event.object).map_err(|e| format!("undecodable pod in {} event: {e}", event.kind))?;
        let resource_version = pod.metadata.resource_version.clone();
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" => {
                self.pods.insert(pod.metadata.key(), pod);
            }
            "DELETED" => {
                self.pods.remove(&pod.metadata.key());
            }
            "BOOKMARK" => {}
            other => return Err(format!("unknown pod watch event type {other:?}")),
        }
        Ok(Step::Continue(resource_version))
    }

    /// Host IPs of Running and Ready pods, sorted and deduplicated.
    pub fn addresses(&self) -> Vec<IngressLoadBalancerIngress> {
        let ips: BTreeSet<IpAddr> = self.pods.values().filter_map(Pod::serving_host_ip).collect();
        ips.into_iter().map(|ip| IngressLoadBalancerIngress { ip: Some(ip.to_string()), hostname: None }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(text: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress { ip: Some(text.into()), hostname: None }
    }

    fn pod(name: &str, phase: &str, ready: &str, host_ip: &str) -> serde_json::Value {
        json!({"metadata": {"namespace": "ingress", "name": name, "resourceVersion": "5"},
               "status": {"phase": phase, "hostIP": host_ip,
                          "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]}})
    }

    fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("encode")
    }

    #[test]
    fn publish_flag_values_become_ips_or_hostnames() {
        let values: Vec<String> = ["192.0.2.10", "lb.example.com", "2001:db8::1", "192.0.2.10", "192.0.2.9"].map(String::from).into();
        assert_eq!(
            from_publish_flag(&values),
            vec![
                IngressLoadBalancerIngress { ip: None, hostname: Some("lb.example.com".into()) },
                ip("192.0.2.10"),
                ip("192.0.2.9"),
                ip("2001:db8::1"),
            ]
        );
        assert!(from_publish_flag(&[]).is_empty());
    }

    #[test]
    fn only_running_ready_pods_count() {
        let table = [
            ("Running", "True", "10.0.0.1", Some("10.0.0.1")),
            ("Running", "False", "10.0.0.1", None),
            ("Pending", "True", "10.0.0.1", None),
            ("Running", "True", "", None),
            ("Running", "True", "not-an-ip", None),
        ];
        for (phase, ready, host, want) in table {
            let pod: Pod = serde_json::from_value(pod("p", phase, ready, host)).expect("decode");
            assert_eq!(pod.serving_host_ip().map(|i| i.to_string()).as_deref(), want, "{phase} {ready} {host}");
        }
        let no_conditions: Pod = serde_json::from_value(json!({"status": {"phase": "Running", "hostIP": "10.0.0.1"}})).expect("decode");
        assert_eq!(no_conditions.serving_host_ip(), None);
    }

    #[test]
    fn list_then_events_give_sorted_deduplicated_host_ips() {
        let mut set = PodSet::default();
        let list = json!({"metadata": {"resourceVersion": "10"}, "items": [
            pod("a", "Running", "True", "10.0.0.2"),
            pod("b", "Running", "True", "10.0.0.1"),
            pod("c", "Running", "True", "10.0.0.2"),
            pod("d", "Running", "False", "10.0.0.3"),
        ]});
        assert_eq!(set.replace(list), Ok("10".to_string()));
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.2")]);

        assert_eq!(set.apply(&event("MODIFIED", pod("d", "Running", "True", "10.0.0.3"))), Ok(Step::Continue("5".into())));
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        set.apply(&event("DELETED", pod("a", "Running", "True", "10.0.0.2"))).expect("delete");
        assert_eq!(set.addresses().len(), 3, "pod c still serves on 10.0.0.2");
        set.apply(&event("DELETED", pod("c", "Running", "True", "10.0.0.2"))).expect("delete");
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.3")]);
        let bookmark = json!({"metadata": {"resourceVersion": "99"}});
        assert_eq!(set.apply(&event("BOOKMARK", bookmark)), Ok(Step::Continue("99".into())));
    }

    #[test]
    fn bad_lines_are_errors_and_error_events_relist() {
        let mut set = PodSet::default();
        assert!(set.apply(b"{not json").is_err());
        assert!(set.apply(&event("EXPLODED", pod("a", "Running", "True", "10.0.0.1"))).is_err());
        assert!(set.apply(&event("ADDED", json!({"status": {"phase": 7}}))).is_err());
        let gone = json!({"kind": "Status", "code": 410, "message": "too old resource version"});
        assert!(matches!(set.apply(&event("ERROR", gone)), Ok(Step::Relist(m)) if m.contains("410")));
        assert!(set.replace(json!({"items": "nope"})).is_err());
        assert!(set.addresses().is_empty());
    }
}
