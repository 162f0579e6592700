//! ingressd's own pods, through the same watcher as every cached kind (the
//! [`PODS`] row, POD_NAMESPACE, `--pod-selector`), kept in a [`PodSet`]
//! whose ready host IPs become the published addresses.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::kube::client::ApiClient;
use crate::kube::watcher::{self, Change, Sink, Target};
use crate::stop::Stop;

use super::addresses::{Pod, PodSet, PODS};
use super::StatusState;

/// Applies the watcher's changes and publishes the address set.
struct PodSink {
    pods: PodSet,
    state: Arc<StatusState>,
}

impl Sink<Pod> for PodSink {
    fn deliver(&mut self, change: Change<Pod>) -> bool {
        match change {
            Change::Replace(pods) => self.pods.replace(pods),
            Change::Upsert(pod) => self.pods.upsert(pod),
            Change::Delete(pod) => self.pods.remove(&pod),
        }
        let addresses = self.pods.addresses();
        let shown: Vec<&str> = addresses.iter().filter_map(|a| a.ip.as_deref()).collect();
        let summary = format!("ingressd answers on {} node address(es): {}", shown.len(), shown.join(", "));
        if self.state.set_addresses(addresses) {
            log::info!("{summary}");
        }
        true
    }
}

pub(super) fn spawn(client: Arc<ApiClient>, namespace: &str, selector: &str, state: Arc<StatusState>, stop: Stop) -> std::io::Result<JoinHandle<()>> {
    let target = Target { resource: &PODS, namespace: Some(namespace.to_string()), label_selector: Some(selector.to_string()), field_selector: None };
    watcher::spawn_watch(target, client, PodSink { pods: PodSet::default(), state }, None, stop)
}
