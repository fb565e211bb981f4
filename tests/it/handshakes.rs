//! The handshakes senders need answered before they deliver, through the real HTTP stack: the
//! CloudEvents webhook validation (`OPTIONS` with `WebHook-Request-Origin`).

use crate::helpers::*;

#[actix_rt::test]
async fn the_cloudevents_webhook_validation_names_the_origin_and_nothing_is_published() {
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_CLOUDEVENTS_AUTH", "Bearer ce")
            .with("REGBRIDGE_ACR_AUTH", "Bearer acr"),
    )
    .await;
    for path in ["/webhooks/cloudevents", "/webhooks/acr"] {
        let mut res = app
            .client
            .request(awc::http::Method::OPTIONS, format!("{}{path}", app.base))
            .insert_header(("WebHook-Request-Origin", "eventgrid.azure.net"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("webhook-allowed-origin").as_deref(), Some("eventgrid.azure.net"), "{path}");
        assert_eq!(header("webhook-allowed-rate").as_deref(), Some("*"), "{path}");
        let _ = res.body().await;
    }
    // Not a validation request, or a dialect whose senders do not validate this way: 405.
    let res = app
        .client
        .request(awc::http::Method::OPTIONS, format!("{}/webhooks/cloudevents", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let res = app
        .client
        .request(awc::http::Method::OPTIONS, format!("{}/webhooks/harbor", app.base))
        .insert_header(("WebHook-Request-Origin", "eventgrid.azure.net"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    // A disabled endpoint does not exist.
    let res = app
        .client
        .request(awc::http::Method::OPTIONS, format!("{}/webhooks/ecr", app.base))
        .insert_header(("WebHook-Request-Origin", "eventgrid.azure.net"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert!(app.events().is_empty());
}
