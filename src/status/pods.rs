//! Lists then watches ingressd's own pods and publishes the host IPs of the
//! ready ones. Any failure relists after a backoff: a DaemonSet has one pod
//! per node, so a relist is cheap and always repairs the set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::kube::backoff::{Backoff, XorShift};
use crate::kube::client::ApiClient;
use crate::kube::list::encode;
use crate::kube::Error;

use super::addresses::{PodSet, Step};
use super::{sleep_unless_stopped, StatusState};

/// The server ends each pod watch after this; it then resumes.
const WATCH_TIMEOUT_SECONDS: u64 = 300;

pub(super) struct PodWatcher {
    client: Arc<ApiClient>,
    path: String,
    query: String,
    state: Arc<StatusState>,
    stop: Arc<AtomicBool>,
    pods: PodSet,
    backoff: Backoff,
}

impl PodWatcher {
    pub(super) fn new(client: Arc<ApiClient>, namespace: &str, selector: &str, state: Arc<StatusState>, stop: Arc<AtomicBool>) -> PodWatcher {
        PodWatcher {
            client,
            path: format!("/api/v1/namespaces/{namespace}/pods"),
            query: format!("labelSelector={}", encode(selector)),
            state,
            stop,
            pods: PodSet::default(),
            backoff: Backoff::new(XorShift::from_time(0x706f6473)),
        }
    }

    pub(super) fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.list_then_watch() {
                let delay = self.backoff.next_delay();
                log::warn!("ingressd pods ({}?{}): {e}; listing again in {delay:?}", self.path, self.query);
                sleep_unless_stopped(delay, &self.stop);
            }
        }
    }

    /// Lists, then watches until the watch must be replaced by a new list.
    fn list_then_watch(&mut self) -> Result<(), Error> {
        let list = self.client.get_json(&format!("{}?{}", self.path, self.query))?;
        let mut resource_version = self.pods.replace(list).map_err(Error::Decode)?;
        self.publish();
        self.backoff.reset();
        while !self.stop.load(Ordering::Relaxed) {
            let mut stream = self.client.watch_path(&self.path, &self.query, &resource_version, WATCH_TIMEOUT_SECONDS)?;
            while let Some(line) = stream.next_line()? {
                match self.pods.apply(&line) {
                    Ok(Step::Continue(next)) => {
                        if !next.is_empty() {
                            resource_version = next;
                        }
                        self.publish();
                    }
                    Ok(Step::Relist(why)) => return Err(Error::Expired(why)),
                    Err(why) => log::warn!("ingressd pods: {why}; line skipped"),
                }
            }
        }
        Ok(())
    }

    fn publish(&self) {
        let addresses = self.pods.addresses();
        let shown: Vec<&str> = addresses.iter().filter_map(|a| a.ip.as_deref()).collect();
        if self.state.set_addresses(addresses.clone()) {
            log::info!("ingressd answers on {} node address(es): {}", shown.len(), shown.join(", "));
        }
    }
}
