//! The election loop: every retry period, read the Lease, let
//! [`election::decide`] choose, write, and record the outcome in the shared
//! state. Leadership itself lapses by the clock in [`StatusState::is_leading`],
//! so a loop stuck in a slow request cannot extend it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::kube::client::ApiClient;
use crate::kube::Error;

use super::election::{self, Action, Lease, Timing};
use super::{lock, microtime, StatusConfig, StatusState};
use crate::stop::Stop;

pub(super) struct Elector {
    client: Arc<ApiClient>,
    identity: String,
    namespace: String,
    name: String,
    timing: Timing,
    state: Arc<StatusState>,
    stop: Stop,
    /// Held for each read-decide-write round, so a release never interleaves
    /// with a renewal.
    lease_io: Mutex<()>,
    /// Set by [`Elector::release`]: the loop ends and never writes again.
    released: AtomicBool,
}

impl Elector {
    pub(super) fn new(config: &StatusConfig, client: Arc<ApiClient>, state: Arc<StatusState>, stop: Stop) -> Elector {
        Elector {
            client,
            identity: config.identity.clone(),
            namespace: config.lease_namespace.clone(),
            name: config.lease_name.clone(),
            timing: config.timing,
            state,
            stop,
            lease_io: Mutex::new(()),
            released: AtomicBool::new(false),
        }
    }

    fn collection_path(&self) -> String {
        format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", self.namespace)
    }

    fn lease_path(&self) -> String {
        format!("{}/{}", self.collection_path(), self.name)
    }

    /// GETs and decodes the Lease at `path`.
    fn read_lease(&self, path: &str) -> Result<Lease, Error> {
        let value = self.client.get_json(path)?;
        serde_json::from_value::<Lease>(value).map_err(|e| Error::Decode(format!("Lease {path}: {e}")))
    }

    pub(super) fn run(&self) {
        let mut last_holder = String::new();
        // A lasting failure (RBAC, missing namespace) is logged once per change, not every retry.
        let mut last_error = String::new();
        while !self.stop.is_stopped() {
            let io = lock(&self.lease_io);
            if self.released.load(Ordering::Relaxed) {
                return;
            }
            let sent = Instant::now();
            let outcome = self.try_once();
            drop(io);
            if outcome.is_ok() {
                last_error.clear();
            }
            match outcome {
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
                    let message = e.to_string();
                    if message != last_error {
                        log::warn!("Lease {}/{}: {message}; retrying every {:?}", self.namespace, self.name, self.timing.retry_period);
                    } else {
                        log::debug!("Lease {}/{}: {message}", self.namespace, self.name);
                    }
                    last_error = message;
                }
            }
            self.stop.sleep(self.timing.retry_period);
        }
    }

    /// Stops leading at once, ends the loop, and hands the Lease over if it
    /// is ours.
    pub(super) fn release(&self) {
        self.released.store(true, Ordering::Relaxed);
        self.state.resign();
        let _io = lock(&self.lease_io);
        let path = self.lease_path();
        let released = self
            .read_lease(&path)
            .and_then(|lease| match election::release(microtime::now_micros(SystemTime::now()), &lease, &self.identity) {
                Some(Action::Update { resource_version, spec }) => self
                    .client
                    .put_json(&path, &election::lease_object(&self.namespace, &self.name, Some(&resource_version), &spec))
                    .map(|_| true),
                _ => Ok(false),
            });
        match released {
            Ok(true) => log::info!("released Lease {}/{} for another replica", self.namespace, self.name),
            Ok(false) => {}
            Err(e) => log::warn!("Lease {}/{} not released: {e}", self.namespace, self.name),
        }
    }

    /// One read-decide-write round; returns the action that was carried out.
    fn try_once(&self) -> Result<Action, Error> {
        let path = self.lease_path();
        let lease = match self.read_lease(&path) {
            Ok(lease) => Some(lease),
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
