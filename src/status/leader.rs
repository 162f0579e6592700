//! The election loop: every retry period, read the Lease, let
//! [`election::decide`] choose, write, and record the outcome in the shared
//! state. Leadership itself lapses by the clock in [`StatusState::is_leading`],
//! so a loop stuck in a slow request cannot extend it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::kube::client::ApiClient;
use crate::kube::Error;

use super::election::{self, Action, Lease, Timing};
use super::{microtime, sleep_unless_stopped, StatusConfig, StatusState};

pub(super) struct Elector {
    client: Arc<ApiClient>,
    identity: String,
    namespace: String,
    name: String,
    timing: Timing,
    state: Arc<StatusState>,
    stop: Arc<AtomicBool>,
}

impl Elector {
    pub(super) fn new(config: &StatusConfig, client: Arc<ApiClient>, state: Arc<StatusState>, stop: Arc<AtomicBool>) -> Elector {
        Elector {
            client,
            identity: config.identity.clone(),
            namespace: config.lease_namespace.clone(),
            name: config.lease_name.clone(),
            timing: config.timing,
            state,
            stop,
        }
    }

    fn collection_path(&self) -> String {
        format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", self.namespace)
    }

    pub(super) fn run(self) {
        let mut last_holder = String::new();
        while !self.stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            match self.try_once() {
                Ok(Action::Follow { holder }) => {
                    if self.state.resign() {
                        log::warn!("Lease {}/{} now held by {holder:?}: no longer leader, status writes stop", self.namespace, self.name);
                    } else if holder != last_holder {
                        log::info!("Lease {}/{} held by {holder:?}; this replica does not write status", self.namespace, self.name);
                    }
                    last_holder = holder;
                }
                Ok(_) => {
                    if self.state.renewed(sent) {
                        log::info!("acquired Lease {}/{} as {:?}: this replica writes Ingress status", self.namespace, self.name, self.identity);
                    }
                    last_holder.clone_from(&self.identity);
                }
                Err(Error::Conflict(_)) => {
                    if self.state.resign() {
                        log::warn!("Lease {}/{} changed under us (409): no longer leader", self.namespace, self.name);
                    }
                }
                Err(e) => {
                    // Leadership, if any, runs out at the renew deadline by itself.
                    log::warn!("Lease {}/{}: {e}", self.namespace, self.name);
                }
            }
            sleep_unless_stopped(self.timing.retry_period, &self.stop);
        }
    }

    /// One read-decide-write round; returns the action that was carried out.
    fn try_once(&self) -> Result<Action, Error> {
        let path = format!("{}/{}", self.collection_path(), self.name);
        let lease = match self.client.get_json(&path) {
            Ok(value) => Some(serde_json::from_value::<Lease>(value).map_err(|e| Error::Decode(format!("Lease {path}: {e}")))?),
            Err(Error::Http { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        let now = microtime::now_micros(SystemTime::now());
        let action = election::decide(now, lease.as_ref(), &self.identity, &self.timing);
        match &action {
            Action::Create(spec) => {
                self.client.post_json(&self.collection_path(), &election::lease_object(&self.namespace, &self.name, None, spec))?;
            }
            Action::Update { resource_version, spec } => {
                self.client.put_json(&path, &election::lease_object(&self.namespace, &self.name, Some(resource_version), spec))?;
            }
            Action::Follow { .. } => {}
        }
        Ok(action)
    }
}
