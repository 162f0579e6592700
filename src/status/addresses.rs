//! Which addresses ingressd publishes: the `--publish-status-address`
//! values, or the host IPs of the nodes where its pods run and are ready.
//! Pure: the pod watcher in `pods.rs` feeds the changes it sees into [`PodSet`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

use crate::kube::objects::{IngressLoadBalancerIngress, ObjectKey, ObjectMeta};
use crate::kube::{Resource, Versioned};

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

/// Where ingressd's own pods are read: one more row like the cached kinds'.
pub const PODS: Resource<Pod> = Resource {
    name: "pod",
    group: "",
    version: "v1",
    plural: "pods",
    namespaced: true,
    field_selector: None,
    withhold_values: false,
    decode: |json| serde_json::from_str(json),
};

impl Versioned for Pod {
    fn resource_version(&self) -> &str {
        &self.metadata.resource_version
    }
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

/// ingressd's own pods, by key, as the last list and the watch since say.
#[derive(Debug, Default)]
pub struct PodSet {
    pods: BTreeMap<ObjectKey, Pod>,
}

impl PodSet {
    /// Replaces everything with a complete list.
    pub fn replace(&mut self, pods: Vec<Pod>) {
        self.pods = pods.into_iter().map(|pod| (pod.metadata.key(), pod)).collect();
    }

    pub fn upsert(&mut self, pod: Pod) {
        self.pods.insert(pod.metadata.key(), pod);
    }

    pub fn remove(&mut self, pod: &Pod) {
        self.pods.remove(&pod.metadata.key());
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

    fn decoded(value: serde_json::Value) -> Pod {
        (PODS.decode)(&value.to_string()).expect("a pod")
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
    fn list_then_changes_give_sorted_deduplicated_host_ips() {
        let mut set = PodSet::default();
        set.replace(vec![
            decoded(pod("a", "Running", "True", "10.0.0.2")),
            decoded(pod("b", "Running", "True", "10.0.0.1")),
            decoded(pod("c", "Running", "True", "10.0.0.2")),
            decoded(pod("d", "Running", "False", "10.0.0.3")),
        ]);
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.2")]);

        let ready = decoded(pod("d", "Running", "True", "10.0.0.3"));
        assert_eq!(ready.resource_version(), "5");
        set.upsert(ready);
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]);
        set.remove(&decoded(pod("a", "Running", "True", "10.0.0.2")));
        assert_eq!(set.addresses().len(), 3, "pod c still serves on 10.0.0.2");
        set.remove(&decoded(pod("c", "Running", "True", "10.0.0.2")));
        assert_eq!(set.addresses(), vec![ip("10.0.0.1"), ip("10.0.0.3")]);
        set.replace(Vec::new());
        assert!(set.addresses().is_empty(), "a new list replaces everything");
    }

    #[test]
    fn pods_decode_through_the_generic_watch_line_decoder() {
        use crate::kube::watch_line::{decode_event, DecodeError, WatchEvent};
        let line = serde_json::to_vec(&json!({"type": "MODIFIED", "object": pod("a", "Running", "True", "10.0.0.1")})).expect("encode");
        assert!(matches!(decode_event(&PODS, &line), Ok(WatchEvent::Modified(p)) if p.serving_host_ip().is_some()));
        let bad = serde_json::to_vec(&json!({"type": "ADDED", "object": {"status": {"phase": 7}}})).expect("encode");
        assert!(matches!(decode_event(&PODS, &bad), Err(DecodeError::Object { .. })));
    }
}
