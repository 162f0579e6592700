//! Writes one Ingress status through the `status` subresource, surviving
//! conflicts: a 409 means the Ingress changed since it was read, so it is
//! read again and the write retried on the fresh resourceVersion, a bounded
//! number of times.

use serde_json::json;

use crate::kube::objects::{Ingress, ObjectKey};
use crate::kube::Error;

use super::plan::Write;

/// Attempts per write: the first plus re-reads after conflicts.
pub const MAX_ATTEMPTS: usize = 3;

/// The API calls a status write makes; implemented by the API client, and by
/// scripted fakes in tests.
pub trait StatusApi {
    fn get_ingress(&self, key: &ObjectKey) -> Result<serde_json::Value, Error>;
    fn put_ingress_status(&self, key: &ObjectKey, body: &serde_json::Value) -> Result<serde_json::Value, Error>;
}

/// `/apis/networking.k8s.io/v1/namespaces/NS/ingresses/NAME`.
pub fn ingress_path(key: &ObjectKey) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{}/ingresses/{}", key.namespace, key.name)
}

impl StatusApi for crate::kube::client::ApiClient {
    fn get_ingress(&self, key: &ObjectKey) -> Result<serde_json::Value, Error> {
        self.get_json(&ingress_path(key))
    }

    fn put_ingress_status(&self, key: &ObjectKey, body: &serde_json::Value) -> Result<serde_json::Value, Error> {
        self.put_json(&format!("{}/status", ingress_path(key)), body)
    }
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The status was replaced.
    Replaced,
    /// A re-read showed the Ingress already holds the desired status.
    AlreadySet,
    /// Leadership lapsed between attempts; nothing more was written.
    NoLongerLeading,
}

/// Writes `write.status`, checking `may_write` before every attempt. The
/// body carries only identity, resourceVersion and status: the subresource
/// ignores everything else.
pub fn write_status(api: &dyn StatusApi, write: &Write, may_write: &dyn Fn() -> bool) -> Result<Written, Error> {
    let mut resource_version = write.resource_version.clone();
    let mut attempt = 1;
    loop {
        if !may_write() {
            return Ok(Written::NoLongerLeading);
        }
        let body = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"namespace": write.key.namespace, "name": write.key.name, "resourceVersion": resource_version},
            "status": write.status,
        });
        match api.put_ingress_status(&write.key, &body) {
            Ok(_) => return Ok(Written::Replaced),
            Err(Error::Conflict(message)) if attempt < MAX_ATTEMPTS => {
                log::debug!("status of Ingress {}: conflict ({message}); reading it again", write.key);
                let fresh: Ingress = serde_json::from_value(api.get_ingress(&write.key)?)
                    .map_err(|e| Error::Decode(format!("Ingress {}: {e}", write.key)))?;
                if fresh.status.unwrap_or_default() == write.status {
                    return Ok(Written::AlreadySet);
                }
                resource_version = fresh.metadata.resource_version.to_string();
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::{IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus};
    use std::cell::RefCell;

    /// Answers PUTs from a script and GETs with a fixed object; records PUT resourceVersions.
    struct Scripted {
        puts: RefCell<Vec<Result<(), u16>>>,
        current: serde_json::Value,
        sent: RefCell<Vec<String>>,
        gets: RefCell<usize>,
    }

    impl StatusApi for Scripted {
        fn get_ingress(&self, _: &ObjectKey) -> Result<serde_json::Value, Error> {
            *self.gets.borrow_mut() += 1;
            Ok(self.current.clone())
        }

        fn put_ingress_status(&self, key: &ObjectKey, body: &serde_json::Value) -> Result<serde_json::Value, Error> {
            assert_eq!(body["metadata"]["name"], key.name.as_str());
            self.sent.borrow_mut().push(body["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string());
            match self.puts.borrow_mut().remove(0) {
                Ok(()) => Ok(body.clone()),
                Err(409) => Err(Error::Conflict("the object has been modified".into())),
                Err(status) => Err(Error::Http { status, message: String::new(), retry_after: None }),
            }
        }
    }

    fn desired() -> IngressStatus {
        IngressStatus {
            load_balancer: IngressLoadBalancerStatus { ingress: vec![IngressLoadBalancerIngress { ip: Some("192.0.2.10".into()), hostname: None }] },
        }
    }

    fn scripted(puts: Vec<Result<(), u16>>, current_status: serde_json::Value) -> Scripted {
        Scripted {
            puts: RefCell::new(puts),
            current: json!({"metadata": {"namespace": "web", "name": "site", "resourceVersion": "20"}, "status": current_status}),
            sent: RefCell::new(Vec::new()),
            gets: RefCell::new(0),
        }
    }

    fn write() -> Write {
        Write { key: ObjectKey::new("web", "site"), resource_version: "10".into(), status: desired() }
    }

    #[test]
    fn conflicts_reread_and_retry_on_the_fresh_version() {
        let api = scripted(vec![Err(409), Ok(())], json!({}));
        assert_eq!(write_status(&api, &write(), &|| true).expect("written"), Written::Replaced);
        assert_eq!(*api.sent.borrow(), ["10", "20"]);
        assert_eq!(*api.gets.borrow(), 1);
    }

    #[test]
    fn a_conflict_with_the_desired_status_already_there_ends_the_write() {
        let api = scripted(vec![Err(409)], json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}));
        assert_eq!(write_status(&api, &write(), &|| true).expect("done"), Written::AlreadySet);
    }

    #[test]
    fn conflicts_are_bounded_and_other_errors_are_not_retried() {
        let api = scripted(vec![Err(409); MAX_ATTEMPTS], json!({}));
        assert!(matches!(write_status(&api, &write(), &|| true), Err(Error::Conflict(_))));
        assert_eq!(api.sent.borrow().len(), MAX_ATTEMPTS);
        let api = scripted(vec![Err(500)], json!({}));
        assert!(matches!(write_status(&api, &write(), &|| true), Err(Error::Http { status: 500, .. })));
        assert_eq!(*api.gets.borrow(), 0);
    }

    #[test]
    fn nothing_is_written_without_leadership() {
        let api = scripted(vec![], json!({}));
        assert_eq!(write_status(&api, &write(), &|| false).expect("no error"), Written::NoLongerLeading);
        assert!(api.sent.borrow().is_empty());
    }
}
