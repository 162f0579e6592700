//! The publisher loop: while leading, compares the desired status of every
//! Ingress with the cached one and writes the differences.
//!
//! It sleeps until an input changes — a new cache generation, a new address
//! set, a new leadership term (all notify one [`Notify`](crate::notify::Notify))
//! — or a retry after a failed write is due, and only plans when one did
//! (generations compared by `Arc` pointer, holding the last one so its
//! address cannot be reused by a newer one).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Generation;
use crate::routes;

use super::plan::{self, Memory};
use super::writer::{write_status, Written};
use super::{Inputs, StatusState};

/// The longest sleep without a change: how soon a leadership that lapsed by
/// the clock is noticed (stop notifies the same [`Notify`](crate::notify::Notify)).
const IDLE: Duration = Duration::from_secs(2);
/// After a failed write, plan again this much later even without changes.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// The inputs a plan was made from.
struct Seen {
    generation: Arc<Generation>,
    addresses: u64,
    term: u64,
}

impl PartialEq for Seen {
    fn eq(&self, other: &Seen) -> bool {
        Arc::ptr_eq(&self.generation, &other.generation) && self.addresses == other.addresses && self.term == other.term
    }
}

pub(super) struct Publisher {
    inputs: Inputs,
    state: Arc<StatusState>,
    memory: Memory,
}

impl Publisher {
    pub(super) fn new(inputs: Inputs, state: Arc<StatusState>) -> Publisher {
        Publisher { inputs, state, memory: Memory::default() }
    }

    pub(super) fn run(mut self) {
        let mut seen: Option<Seen> = None;
        let mut retry_at: Option<Instant> = None;
        let changes = Arc::clone(self.inputs.current.published());
        // None until the first look, which does not wait.
        let mut version: Option<u64> = None;
        while !self.inputs.stop.is_stopped() {
            let wait = retry_at.map_or(IDLE, |at| at.saturating_duration_since(Instant::now()).min(IDLE));
            version = Some(match version {
                None => changes.version(),
                Some(seen) => changes.wait_past(seen, wait),
            });
            // A partly synced cache could make our Ingresses look foreign.
            if !self.state.is_leading() || !self.inputs.cache.synced.load(Ordering::Relaxed) {
                continue;
            }
            let generation = self.inputs.current.load();
            let (addresses_version, addresses) = self.state.addresses();
            let now = Seen { generation: Arc::clone(&generation), addresses: addresses_version, term: self.state.term() };
            let retry_due = retry_at.is_some_and(|at| Instant::now() >= at);
            if seen.as_ref() == Some(&now) && !retry_due {
                continue;
            }
            seen = Some(now);
            self.state.evaluations.fetch_add(1, Ordering::Relaxed);
            let snapshot = &generation.snapshot;
            self.memory.retain_existing(snapshot);
            let served = routes::served_ingresses(snapshot, &self.inputs.route_config);
            let writes = plan::plan(snapshot, &served, &addresses, &self.memory);
            retry_at = None;
            for write in writes {
                let state = &self.state;
                match write_status(self.inputs.client.as_ref(), &write, &|| state.is_leading()) {
                    Ok(Written::Replaced) => {
                        state.writes.fetch_add(1, Ordering::Relaxed);
                        log::info!("status of Ingress {} set to {}", write.key, describe(&write));
                        self.memory.wrote(&write);
                    }
                    Ok(Written::AlreadySet) => self.memory.wrote(&write),
                    Ok(Written::NoLongerLeading) => break,
                    Err(e) => {
                        state.write_errors.fetch_add(1, Ordering::Relaxed);
                        log::warn!("status of Ingress {}: {e}; retrying in {RETRY_AFTER_ERROR:?}", write.key);
                        retry_at = Some(Instant::now() + RETRY_AFTER_ERROR);
                    }
                }
            }
        }
    }
}

fn describe(write: &plan::Write) -> String {
    let list: Vec<&str> = write
        .status
        .load_balancer
        .ingress
        .iter()
        .filter_map(|a| a.ip.as_deref().or(a.hostname.as_deref()))
        .collect();
    if list.is_empty() {
        "nothing (cleared)".to_string()
    } else {
        list.join(", ")
    }
}
