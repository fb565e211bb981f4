//! The CloudEvents webhook validation handshake (abuse protection): before delivering, a sender
//! (Event Grid in the CloudEvents schema, Knative) asks with `OPTIONS` and
//! `WebHook-Request-Origin` whether this endpoint takes its events; the answer names the origin.

use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::{web, HttpRequest, HttpResponse};

use super::{IngressError, State};

/// `OPTIONS /webhooks/{name}`: allowed for endpoints whose dialect's senders validate this way.
/// Nothing is published, so no credential is asked for; an unknown or disabled endpoint is 404.
pub async fn options(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, IngressError> {
    let name = match req.match_info().get("endpoint") {
        Some(n) => n,
        None => req.path().strip_prefix("/webhooks/").unwrap_or_default(),
    };
    let entry = state.endpoints.get(name).filter(|e| e.endpoint.verifier.is_some());
    let entry = entry.ok_or_else(|| IngressError::UnknownEndpoint(name.to_owned()))?;
    let origin = req.headers().get("webhook-request-origin").and_then(|v| v.to_str().ok()).map(str::trim);
    match origin.filter(|o| !o.is_empty()) {
        Some(origin) if entry.endpoint.dialect.webhook_validation => {
            let origin = HeaderValue::from_str(origin).map_err(|_| IngressError::MethodNotAllowed)?;
            Ok(HttpResponse::Ok()
                .insert_header(("webhook-allowed-origin", origin))
                // No rate of our own to ask for: the in-flight and rate limits apply as to anyone.
                .insert_header(("webhook-allowed-rate", "*"))
                .insert_header((ALLOW, "POST, OPTIONS"))
                .finish())
        }
        _ => Err(IngressError::MethodNotAllowed),
    }
}
