//! The order in which rival claims on a host, path or default backend win.
//! Below both `compile`, which settles claims, and `table`, which keeps the
//! losers for the inspector.

use crate::kube::objects::{Ingress, ObjectKey, SmolStr};

/// An Ingress's place in the order in which claims win: creationTimestamp
/// (missing counts as oldest), then namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Age {
    created: SmolStr,
    pub(crate) key: ObjectKey,
}

impl Age {
    pub(crate) fn of(ingress: &Ingress) -> Age {
        Age { created: ingress.metadata.creation_timestamp.clone(), key: ingress.metadata.key() }
    }
}
