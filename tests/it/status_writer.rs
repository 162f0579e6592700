//! The status writer and the generic JSON client calls against the fake API
//! server over real HTTPS: a genuine stale-resourceVersion conflict is
//! re-read and retried; 409 maps to `Error::Conflict`.

use crate::common;

use common::{ingress, Api};
use ingressd::kube::client::ApiClient;
use ingressd::kube::objects::{IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus, ObjectKey};
use ingressd::kube::Error;
use ingressd::status::plan::Write;
use ingressd::status::writer::{ingress_path, write_status, Written};
use serde_json::json;

fn client(api: &Api) -> ApiClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ApiClient::new(&api.fake.url(), &api.dir.path("ca.crt"), &api.dir.path("token")).expect("client")
}

fn status(ip: &str) -> IngressStatus {
    IngressStatus { load_balancer: IngressLoadBalancerStatus { ingress: vec![IngressLoadBalancerIngress { ip: Some(ip.into()), hostname: None }] } }
}

#[test]
fn a_stale_resource_version_is_reread_and_the_write_retried() {
    let api = Api::start();
    let created = api.fake.create(ingress("web", "site", &[("shop.example.com", "/", "blue")]));
    let stale = created["metadata"]["resourceVersion"].as_str().expect("rv").to_string();
    // Someone else changes the Ingress after our cache saw it.
    api.fake.apply(ingress("web", "site", &[("shop.example.com", "/v2", "blue")]));

    let client = client(&api);
    let key = ObjectKey::new("web", "site");
    let write = Write { key: key.clone(), resource_version: stale, status: status("192.0.2.10") };
    assert_eq!(write_status(&client, &write, &|| true).expect("written"), Written::Replaced);
    let stored = api.fake.get("networking.k8s.io/v1", "Ingress", "web", "site").expect("exists");
    assert_eq!(stored["status"], json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}));
    assert_eq!(stored["spec"]["rules"][0]["http"]["paths"][0]["path"], "/v2", "the other writer's spec change survives");
    assert_eq!(api.fake.request_count(&format!("{}/status", ingress_path(&key))), 2);
    assert_eq!(api.fake.request_count(&ingress_path(&key)), 1);

    // Written again over the same stale version: the re-read shows it is already there.
    assert_eq!(write_status(&client, &write, &|| true).expect("done"), Written::AlreadySet);
}

#[test]
fn json_helpers_map_conflicts_and_missing_objects() {
    let api = Api::start();
    let client = client(&api);
    let leases = "/apis/coordination.k8s.io/v1/namespaces/ingress/leases";
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"namespace": "ingress", "name": "l"}, "spec": {"holderIdentity": "a"}});
    assert!(matches!(client.get_json(&format!("{leases}/l")), Err(Error::Http { status: 404, .. })));
    let created = client.post_json(leases, &lease).expect("created");
    assert!(matches!(client.post_json(leases, &lease), Err(Error::Conflict(_))), "create of an existing name");
    let mut update = created.clone();
    update["spec"]["holderIdentity"] = json!("b");
    client.put_json(&format!("{leases}/l"), &update).expect("updated with the read version");
    assert!(matches!(client.put_json(&format!("{leases}/l"), &update), Err(Error::Conflict(_))), "stale version");
    assert_eq!(client.get_json(&format!("{leases}/l")).expect("read")["spec"]["holderIdentity"], "b");
}
