//! Which Ingress statuses to write, as a pure function of the snapshot, the
//! served set, the addresses and what this process wrote before.
//!
//! Clearing is deliberately narrow so another controller's status is never
//! clobbered: an Ingress that is not (or no longer) ours is cleared only when
//! this process set its status, or when its status lists exactly the
//! addresses ingressd publishes now (which covers a status left behind by a
//! previous leader with the same addresses).

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Snapshot;
use crate::kube::objects::{Ingress, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus, ObjectKey};

/// One status write: replace `key`'s status, guarded by `resource_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: ObjectKey,
    pub resource_version: String,
    pub status: IngressStatus,
}

/// What this process remembers of its own writes.
#[derive(Debug, Default)]
pub struct Memory {
    /// Ingresses whose status we set to our addresses: cleared when they stop
    /// being ours.
    pub claimed: BTreeSet<ObjectKey>,
    /// The last successful write per Ingress: the resourceVersion it replaced
    /// and the status it wrote. While the cache still holds that version (the
    /// watch event is on its way), the cached status is known to be stale and
    /// the write is not repeated.
    pub written_over: BTreeMap<ObjectKey, (String, IngressStatus)>,
}

impl Memory {
    /// Records a successful write.
    pub fn wrote(&mut self, write: &Write) {
        if write.status.load_balancer.ingress.is_empty() {
            self.claimed.remove(&write.key);
        } else {
            self.claimed.insert(write.key.clone());
        }
        self.written_over.insert(write.key.clone(), (write.resource_version.clone(), write.status.clone()));
    }

    /// Forgets Ingresses that no longer exist.
    pub fn retain_existing(&mut self, snapshot: &Snapshot) {
        self.claimed.retain(|key| snapshot.ingresses.contains_key(key));
        self.written_over.retain(|key, _| snapshot.ingresses.contains_key(key));
    }
}

fn status_with(addresses: &[IngressLoadBalancerIngress]) -> IngressStatus {
    IngressStatus { load_balancer: IngressLoadBalancerStatus { ingress: addresses.to_vec() } }
}

/// The writes that bring every Ingress to its desired status.
///
/// With no addresses known yet (no ready pod seen), served Ingresses are left
/// alone rather than blanked; only clearing of claimed Ingresses proceeds.
pub fn plan(snapshot: &Snapshot, served: &[&Ingress], addresses: &[IngressLoadBalancerIngress], memory: &Memory) -> Vec<Write> {
    let served_keys: BTreeSet<ObjectKey> = served.iter().map(|i| i.metadata.key()).collect();
    let ours = status_with(addresses);
    let mut writes = Vec::new();
    for (key, ingress) in &snapshot.ingresses {
        let current = ingress.status.clone().unwrap_or_default();
        let desired = if served_keys.contains(key) {
            if addresses.is_empty() {
                continue;
            }
            ours.clone()
        } else {
            let listed = &current.load_balancer.ingress;
            let left_by_us = memory.claimed.contains(key) || (!addresses.is_empty() && *listed == ours.load_balancer.ingress);
            if listed.is_empty() || !left_by_us {
                continue;
            }
            IngressStatus::default()
        };
        if current == desired {
            continue;
        }
        let resource_version = &ingress.metadata.resource_version;
        if memory.written_over.get(key).is_some_and(|(over, wrote)| over == resource_version && *wrote == desired) {
            continue;
        }
        writes.push(Write { key: key.clone(), resource_version: resource_version.to_string(), status: desired });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::ObjectMeta;

    fn ip(text: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress { ip: Some(text.into()), hostname: None }
    }

    fn ingress(name: &str, rv: &str, status: &[&str]) -> Ingress {
        Ingress {
            metadata: ObjectMeta { namespace: "web".into(), name: name.into(), resource_version: rv.into(), ..Default::default() },
            status: (!status.is_empty()).then(|| status_with(&status.iter().map(|s| ip(s)).collect::<Vec<_>>())),
            ..Default::default()
        }
    }

    fn snapshot(ingresses: &[Ingress]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for i in ingresses {
            snapshot.insert(crate::kube::Object::Ingress(i.clone()));
        }
        snapshot
    }

    /// Runs `plan` with the named Ingresses served; returns (name, addresses written).
    fn run(ingresses: &[Ingress], served: &[&str], addresses: &[&str], memory: &Memory) -> Vec<(String, Vec<String>)> {
        let snapshot = snapshot(ingresses);
        let served: Vec<&Ingress> = ingresses.iter().filter(|i| served.contains(&i.metadata.name.as_str())).collect();
        let addresses: Vec<_> = addresses.iter().map(|a| ip(a)).collect();
        plan(&snapshot, &served, &addresses, memory)
            .into_iter()
            .map(|w| (w.key.name.to_string(), w.status.load_balancer.ingress.into_iter().filter_map(|a| a.ip).collect()))
            .collect()
    }

    fn names(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter().map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect())).collect()
    }

    /// (case, Ingresses, served names, addresses, expected writes (name, addresses)).
    type PlanCase<'a> = (&'a str, Vec<Ingress>, &'a [&'a str], &'a [&'a str], &'a [(&'a str, &'a [&'a str])]);

    #[test]
    fn served_ingresses_get_our_addresses_once() {
        let none = Memory::default();
        let ours = ["192.0.2.10"];
        let table: &[PlanCase] = &[
            ("served, no status: set", vec![ingress("a", "1", &[])], &["a"], &ours, &[("a", &ours)]),
            ("served, already ours: skip", vec![ingress("a", "1", &ours)], &["a"], &ours, &[]),
            ("served, old addresses: replace", vec![ingress("a", "1", &["192.0.2.9"])], &["a"], &ours, &[("a", &ours)]),
            ("served, no addresses known: leave", vec![ingress("a", "1", &["192.0.2.9"])], &["a"], &[], &[]),
            ("foreign without status: nothing", vec![ingress("f", "1", &[])], &[], &ours, &[]),
            ("foreign with another's status: keep", vec![ingress("f", "1", &["203.0.113.5"])], &[], &ours, &[]),
            ("foreign listing exactly ours: clear", vec![ingress("f", "1", &ours)], &[], &ours, &[("f", &[])]),
            ("foreign listing ours plus more: keep", vec![ingress("f", "1", &["192.0.2.10", "203.0.113.5"])], &[], &ours, &[]),
        ];
        for (name, ingresses, served, addresses, want) in table {
            assert_eq!(run(ingresses, served, addresses, &none), names(want), "{name}");
        }
    }

    #[test]
    fn claimed_ingresses_are_cleared_when_they_stop_being_ours() {
        let mut memory = Memory::default();
        let write = Write { key: ObjectKey::new("web", "a"), resource_version: "1".into(), status: status_with(&[ip("10.0.0.1")]) };
        memory.wrote(&write);
        assert!(memory.claimed.contains(&write.key));
        // The addresses moved on since, so only the claim identifies our status.
        let stale = [ingress("a", "2", &["10.0.0.1"])];
        assert_eq!(run(&stale, &[], &["10.0.0.2"], &memory), names(&[("a", &[])]));
        assert_eq!(run(&stale, &[], &[], &memory), names(&[("a", &[])]), "clearing needs no addresses");
        memory.wrote(&Write { key: write.key.clone(), resource_version: "2".into(), status: IngressStatus::default() });
        assert!(!memory.claimed.contains(&write.key), "a cleared Ingress is no longer claimed");
    }

    #[test]
    fn a_write_is_not_repeated_while_the_cache_lags() {
        let mut memory = Memory::default();
        let ours = ["192.0.2.10"];
        let lagging = [ingress("a", "7", &[])];
        let writes = plan(&snapshot(&lagging), &[&lagging[0]], &[ip("192.0.2.10")], &memory);
        assert_eq!(writes.len(), 1);
        memory.wrote(&writes[0]);
        assert_eq!(run(&lagging, &["a"], &ours, &memory), names(&[]), "cache still at rv 7: skip");
        let changed = [ingress("a", "9", &[])];
        assert_eq!(run(&changed, &["a"], &ours, &memory), names(&[("a", &ours)]), "someone reset it since: write again");
        assert_eq!(run(&lagging, &["a"], &["192.0.2.11"], &memory), names(&[("a", &["192.0.2.11"])]), "new addresses: write");
    }

    #[test]
    fn memory_forgets_deleted_ingresses() {
        let mut memory = Memory::default();
        memory.wrote(&Write { key: ObjectKey::new("web", "gone"), resource_version: "1".into(), status: status_with(&[ip("10.0.0.1")]) });
        memory.retain_existing(&snapshot(&[ingress("a", "1", &[])]));
        assert!(memory.claimed.is_empty() && memory.written_over.is_empty());
    }
}
