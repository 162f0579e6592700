//! Leader election on a `coordination.k8s.io/v1` Lease, as a pure state
//! machine: given the clock, the Lease as read (or its absence) and our
//! identity, [`decide`] says what to write. The loop that reads and writes
//! lives in `leader.rs`.
//!
//! The rules are client-go's: a Lease may be taken once
//! `renewTime + leaseDurationSeconds` has passed; every write carries the
//! resourceVersion it was decided on, so of two replicas deciding on the same
//! read only one write succeeds (the other gets 409). A leader counts itself
//! leader only until `renew_deadline` after its last successful renewal, which
//! is shorter than the lease duration, so it stops writing before anyone else
//! may take over.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kube::objects::ObjectMeta;

use super::microtime;

/// The three election intervals. Only `lease_duration` is written to the
/// Lease; the other two are local behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// The ordering the safety argument needs: a leader must give up
    /// (renew deadline) before the Lease expires for others, and must try to
    /// renew (retry period) more than once before it gives up.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err("--lease-duration must be at least 1 second".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("--lease-renew-deadline must be shorter than --lease-duration".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("--lease-retry-period must be above 0 and shorter than --lease-renew-deadline".into());
        }
        Ok(())
    }

    /// `leaseDurationSeconds` is whole seconds; rounding up never lets a
    /// rival take over sooner than our renew deadline allows.
    pub fn lease_duration_seconds(&self) -> i64 {
        self.lease_duration.as_secs_f64().ceil() as i64
    }
}

/// A Lease as far as the election reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Lease {
    pub metadata: ObjectMeta,
    pub spec: LeaseSpec,
}

/// `spec` of a Lease; times are `MicroTime` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaseSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i64>,
}

/// What to write next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No Lease exists: create it holding it ourselves.
    Create(LeaseSpec),
    /// Renew our Lease or take over an expired one, guarded by the
    /// resourceVersion that was read.
    Update { resource_version: String, spec: LeaseSpec },
    /// Someone else holds a live Lease: write nothing, lead nothing.
    Follow { holder: String },
}

/// Decides the next step at `now_micros` (Unix microseconds).
///
/// A held Lease whose renewTime is missing or unreadable counts as expired:
/// no live holder writes such a Lease, and waiting on it would stall status
/// publishing for good.
pub fn decide(now_micros: i64, lease: Option<&Lease>, identity: &str, timing: &Timing) -> Action {
    let now = microtime::format(now_micros);
    let ours = |acquire_time: String, transitions: i64| LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        acquire_time: Some(acquire_time),
        renew_time: Some(now.clone()),
        lease_transitions: Some(transitions),
    };
    let Some(lease) = lease else {
        return Action::Create(ours(now.clone(), 0));
    };
    let spec = &lease.spec;
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    let resource_version = lease.metadata.resource_version.to_string();
    if holder == identity {
        let acquired = spec.acquire_time.clone().unwrap_or_else(|| now.clone());
        return Action::Update { resource_version, spec: ours(acquired, transitions) };
    }
    let expires = spec
        .renew_time
        .as_deref()
        .and_then(microtime::parse)
        .map(|renewed| renewed + spec.lease_duration_seconds.unwrap_or(0).max(0) * 1_000_000);
    let expired = match expires {
        Some(expires) => expires < now_micros,
        None => true,
    };
    if holder.is_empty() || expired {
        let transitions = if holder.is_empty() { transitions } else { transitions + 1 };
        return Action::Update { resource_version, spec: ours(now.clone(), transitions) };
    }
    Action::Follow { holder: holder.to_string() }
}

/// Hands a Lease we hold over at shutdown, as client-go's ReleaseOnCancel
/// does: no holder and a one-second duration, so a follower takes it at its
/// next retry instead of after the full lease duration. `None` when the
/// Lease is not ours (nothing to release).
pub fn release(now_micros: i64, lease: &Lease, identity: &str) -> Option<Action> {
    if lease.spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let now = microtime::format(now_micros);
    let spec = LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: lease.spec.lease_transitions,
    };
    Some(Action::Update { resource_version: lease.metadata.resource_version.to_string(), spec })
}

/// Whether a leader whose last successful renewal was sent at
/// `last_renewal` may still write at `now`. The renewal counts from when it
/// was sent, not answered, because the Lease's renewTime is the send time.
pub fn still_leading(last_renewal: Option<Instant>, now: Instant, renew_deadline: Duration) -> bool {
    last_renewal.is_some_and(|sent| now.saturating_duration_since(sent) < renew_deadline)
}

/// The full Lease object to POST or PUT.
pub fn lease_object(namespace: &str, name: &str, resource_version: Option<&str>, spec: &LeaseSpec) -> Value {
    let mut metadata = json!({"namespace": namespace, "name": name});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = Value::String(rv.to_string());
    }
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_600_800_000_000;
    const SECOND: i64 = 1_000_000;

    fn lease(holder: &str, renewed: Option<i64>, duration: i64, transitions: i64) -> Lease {
        Lease {
            metadata: ObjectMeta { resource_version: "42".into(), ..Default::default() },
            spec: LeaseSpec {
                holder_identity: Some(holder.to_string()).filter(|h| !h.is_empty()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(microtime::format(T0 - 100 * SECOND)),
                renew_time: renewed.map(microtime::format),
                lease_transitions: Some(transitions),
            },
        }
    }

    /// What the decision amounts to: (kind, holder written, transitions, acquire time kept).
    fn summary(action: &Action) -> (&'static str, String, i64, bool) {
        let kept = microtime::format(T0 - 100 * SECOND);
        match action {
            Action::Create(spec) => ("create", spec.holder_identity.clone().unwrap_or_default(), spec.lease_transitions.unwrap_or(-1), false),
            Action::Update { resource_version, spec } => {
                assert_eq!(resource_version, "42", "an update is guarded by the read resourceVersion");
                assert_eq!(spec.renew_time.as_deref(), Some(microtime::format(T0)).as_deref());
                ("update", spec.holder_identity.clone().unwrap_or_default(), spec.lease_transitions.unwrap_or(-1), spec.acquire_time.as_deref() == Some(&kept))
            }
            Action::Follow { holder } => ("follow", holder.clone(), -1, false),
        }
    }

    /// (case, Lease as read, expected (kind, holder, transitions, acquireTime kept)).
    type DecisionCase = (&'static str, Option<Lease>, (&'static str, &'static str, i64, bool));

    #[test]
    fn decisions() {
        let timing = Timing::default();
        let table: &[DecisionCase] = &[
            ("absent: create", None, ("create", "me", 0, false)),
            ("ours: renew, keep acquireTime", Some(lease("me", Some(T0 - 20 * SECOND), 15, 3)), ("update", "me", 3, true)),
            ("other, live: follow", Some(lease("other", Some(T0 - 14 * SECOND), 15, 3)), ("follow", "other", -1, false)),
            ("other, exactly at expiry: still live", Some(lease("other", Some(T0 - 15 * SECOND), 15, 3)), ("follow", "other", -1, false)),
            ("other, expired: take over", Some(lease("other", Some(T0 - 15 * SECOND - 1), 15, 3)), ("update", "me", 4, false)),
            ("other, renewTime in the future: live", Some(lease("other", Some(T0 + 60 * SECOND), 15, 3)), ("follow", "other", -1, false)),
            ("other, no renewTime: take over", Some(lease("other", None, 15, 0)), ("update", "me", 1, false)),
            ("released (no holder): take, same transitions", Some(lease("", Some(T0), 15, 5)), ("update", "me", 5, false)),
            ("other, negative duration: expired", Some(lease("other", Some(T0 - SECOND), -5, 0)), ("update", "me", 1, false)),
        ];
        for (name, lease, want) in table {
            let action = decide(T0, lease.as_ref(), "me", &timing);
            let got = summary(&action);
            assert_eq!((got.0, got.1.as_str(), got.2, got.3), *want, "{name}");
        }
    }

    #[test]
    fn a_created_lease_carries_the_whole_record() {
        let Action::Create(spec) = decide(T0, None, "pod-a", &Timing::default()) else { panic!("create expected") };
        let object = lease_object("ingress", "ingressd-leader", None, &spec);
        assert_eq!(object["spec"]["holderIdentity"], "pod-a");
        assert_eq!(object["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(object["spec"]["renewTime"], "2026-11-25T10:00:00.000000Z");
        assert_eq!(object["spec"]["acquireTime"], "2026-11-25T10:00:00.000000Z");
        assert!(object["metadata"].get("resourceVersion").is_none());
        assert_eq!(lease_object("ns", "l", Some("7"), &spec)["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn only_our_lease_is_released_and_a_follower_takes_it_at_once() {
        assert_eq!(release(T0, &lease("other", Some(T0), 15, 3), "me"), None);
        assert_eq!(release(T0, &lease("", Some(T0), 15, 3), "me"), None);
        let Some(Action::Update { resource_version, spec }) = release(T0, &lease("me", Some(T0), 15, 3), "me") else {
            panic!("an update expected")
        };
        assert_eq!((resource_version.as_str(), spec.holder_identity.as_deref(), spec.lease_transitions), ("42", None, Some(3)));
        let released = Lease { metadata: ObjectMeta { resource_version: "43".into(), ..Default::default() }, spec };
        let taken = decide(T0 + SECOND / 10, Some(&released), "other", &Timing::default());
        assert!(matches!(&taken, Action::Update { spec, .. } if spec.holder_identity.as_deref() == Some("other") && spec.lease_transitions == Some(3)));
    }

    #[test]
    fn leadership_ends_at_the_renew_deadline() {
        let start = Instant::now();
        let deadline = Duration::from_secs(10);
        let table = [
            (None, Duration::ZERO, false),
            (Some(start), Duration::ZERO, true),
            (Some(start), Duration::from_millis(9_999), true),
            (Some(start), Duration::from_secs(10), false),
            (Some(start), Duration::from_secs(3600), false),
        ];
        for (renewed, elapsed, want) in table {
            assert_eq!(still_leading(renewed, start + elapsed, deadline), want, "{renewed:?} {elapsed:?}");
        }
    }

    #[test]
    fn timings_are_checked() {
        assert_eq!(Timing::default().check(), Ok(()));
        let t = |d: f64, r: f64, p: f64| Timing {
            lease_duration: Duration::from_secs_f64(d),
            renew_deadline: Duration::from_secs_f64(r),
            retry_period: Duration::from_secs_f64(p),
        };
        assert!(t(2.0, 1.5, 0.2).check().is_ok());
        assert!(t(10.0, 10.0, 2.0).check().is_err(), "renew deadline must be below the duration");
        assert!(t(10.0, 5.0, 5.0).check().is_err(), "retry must be below the renew deadline");
        assert!(t(10.0, 5.0, 0.0).check().is_err());
        assert!(t(0.5, 0.2, 0.1).check().is_err());
        assert_eq!(t(2.5, 1.0, 0.5).lease_duration_seconds(), 3);
    }
}
