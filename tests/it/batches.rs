//! Batched envelopes of every sender that batches: one event per entry, each with its own id,
//! and the sender's retry of the same body gives the same ids again.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;

/// The ids in the answer to posting `body`, and those the sink received, which must agree.
async fn ids(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<String> {
    let before = app.events().len();
    let reply = app.post(path, headers, body.to_vec()).await;
    assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
    let answered: Vec<String> = reply.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let published: Vec<String> =
        app.events()[before..].iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(answered, published, "{path}");
    answered
}

#[actix_rt::test]
async fn every_batch_gives_each_entry_its_own_stable_id() {
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_DISTRIBUTION_AUTH", "Bearer d")
            .with("REGBRIDGE_ACR_AUTH", "Bearer a")
            .with("REGBRIDGE_CLOUDEVENTS_AUTH", "Bearer c")
            .with("REGBRIDGE_ECR_AUTH", "Bearer e")
            .with("REGBRIDGE_QUAY_TOKENS", "q"),
    )
    .await;
    let json = ("content-type", "application/json");
    let grid: Vec<Value> = ["ImagePushed", "ImageDeleted", "ChartPushed"]
        .iter()
        .map(|t| fixture_json(&format!("other/acr/{t}.eventgrid-schema.azure-docs.json"))[0].clone())
        .collect();
    let zot = fixture_json("other/synthetic/zot.image-updated.structured-ce.json");
    let mut zot_2 = zot.clone();
    zot_2["id"] = "0b6a1f3e-0000-4000-8000-0000000000ff".into();
    zot_2["data"]["reference"] = "1.22".into();
    let quay = json!({"repository": "acme/app", "docker_url": "quay.io/acme/app", "updated_tags": ["1", "1.2", "latest"]});
    // Path, headers, body, how many events (0: more than one, as the fixture has).
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, usize);
    let cases: Vec<Case> = vec![
        (
            "/webhooks/distribution",
            vec![
                ("content-type", "application/vnd.docker.distribution.events.v2+json"),
                ("authorization", "Bearer d"),
            ],
            fixture("other/distribution/push.two-repositories.jenkins-dockerhub-notification-plugin.json"),
            2,
        ),
        ("/webhooks/acr", vec![json, ("authorization", "Bearer a")], serde_json::to_vec(&grid).unwrap(), 3),
        (
            "/webhooks/cloudevents",
            vec![("content-type", "application/cloudevents-batch+json"), ("authorization", "Bearer c")],
            serde_json::to_vec(&json!([zot, zot_2])).unwrap(),
            2,
        ),
        (
            "/webhooks/ecr",
            vec![json, ("authorization", "Bearer e")],
            fixture("other/ecr/ScanResourceChange.enhanced.aws-ecr-user-guide.json"),
            0,
        ),
        ("/webhooks/quay?token=q", vec![json], serde_json::to_vec(&quay).unwrap(), 3),
    ];
    let mut all = HashSet::new();
    for (path, headers, body, n) in &cases {
        let first = ids(&app, path, headers, body).await;
        if *n > 0 {
            assert_eq!(first.len(), *n, "{path}: {first:?}");
        } else {
            assert!(first.len() > 1, "{path}: a batch, {first:?}");
        }
        let distinct: HashSet<&String> = first.iter().collect();
        assert_eq!(distinct.len(), first.len(), "{path}: ids repeat within one request: {first:?}");
        // The sender's retry: the same body, the same ids, in the same order.
        assert_eq!(ids(&app, path, headers, body).await, first, "{path}");
        for id in first {
            assert!(all.insert(id.clone()), "{path}: {id} is another request's id too");
        }
    }
}

/// A batch whose entries share an id (a relay re-batching, a hand-made array) still gives each
/// entry an id of its own, `<id>#<index>` as Distribution's envelopes do, and the same ones when
/// the sender retries.
#[actix_rt::test]
async fn a_batch_repeating_an_id_gives_distinct_ids_again_on_retry() {
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_ACR_AUTH", "Bearer a")
            .with("REGBRIDGE_CLOUDEVENTS_AUTH", "Bearer c"),
    )
    .await;
    let pushed = fixture_json("other/acr/ImagePushed.eventgrid-schema.azure-docs.json")[0].clone();
    let mut deleted = fixture_json("other/acr/ImageDeleted.eventgrid-schema.azure-docs.json")[0].clone();
    deleted["id"] = pushed["id"].clone();
    let ce_pushed = fixture_json("other/acr/ImagePushed.cloudevents-schema.azure-docs.json")[0].clone();
    let mut ce_deleted = fixture_json("other/acr/ImageDeleted.cloudevents-schema.azure-docs.json")[0].clone();
    ce_deleted["id"] = ce_pushed["id"].clone();
    let zot = fixture_json("other/synthetic/zot.image-updated.structured-ce.json");
    let mut zot_2 = zot.clone();
    zot_2["data"]["reference"] = "1.22".into();
    let grid_id = pushed["id"].as_str().unwrap().to_owned();
    let ce_id = ce_pushed["id"].as_str().unwrap().to_owned();
    let zot_id = zot["id"].as_str().unwrap().to_owned();
    let json = ("content-type", "application/json");
    let batch = ("content-type", "application/cloudevents-batch+json");
    let cases = [
        ("/webhooks/acr", [json, ("authorization", "Bearer a")], json!([pushed, deleted]), &grid_id),
        ("/webhooks/acr", [batch, ("authorization", "Bearer a")], json!([ce_pushed, ce_deleted]), &ce_id),
        ("/webhooks/cloudevents", [batch, ("authorization", "Bearer c")], json!([zot, zot_2]), &zot_id),
    ];
    for (path, headers, body, id) in &cases {
        let body = serde_json::to_vec(body).unwrap();
        let first = ids(&app, path, headers, &body).await;
        assert_eq!(first, [format!("{id}#0"), format!("{id}#1")], "{path}");
        assert_eq!(ids(&app, path, headers, &body).await, first, "{path}: a retry gives the same ids");
    }
}
