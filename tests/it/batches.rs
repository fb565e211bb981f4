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
