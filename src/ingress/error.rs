//! Every way a webhook can be refused, mapped to an RFC 9457 problem in this one place.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::dedupe::Stale;
use crate::deliver::DeliverError;
use crate::dialects::DialectError;
use crate::outbox::OutboxError;
use crate::sinks::{Oversized, SinkError};
use crate::verify::VerifyError;

/// Prefix of every problem `type`; the suffix names the error class and never changes.
pub const PROBLEM_PREFIX: &str = "urn:regbridge:problem:";

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no enabled webhook endpoint `{0}`")]
    UnknownEndpoint(String),
    #[error("{} may not send to endpoint `{endpoint}`", sender(.client))]
    Forbidden { client: Option<std::net::IpAddr>, endpoint: String },
    #[error("method not allowed: webhooks are delivered with POST")]
    MethodNotAllowed,
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("content type `{0}` is not accepted (use application/json or application/cloudevents+json)")]
    UnsupportedMediaType(String),
    #[error("rate limit of endpoint `{endpoint}` exceeded")]
    RateLimited { endpoint: String, retry_after: Duration },
    #[error("too many requests in flight; retry shortly")]
    Overloaded,
    #[error("too many bodies being uploaded from this address at once; retry shortly")]
    TooManyUploads,
    #[error("too many connections from this address; use fewer, or keep-alive")]
    TooManyConnections,
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Unauthorized(#[from] VerifyError),
    /// An event outside its endpoint's freshness window (`max_event_age`): a replay, or a sender
    /// whose clock is off. Like a stale signature timestamp, a `401`.
    #[error(transparent)]
    StaleEvent(#[from] Stale),
    #[error(transparent)]
    Malformed(#[from] DialectError),
    #[error(transparent)]
    EventTooLarge(#[from] Oversized),
    #[error(transparent)]
    NotDelivered(#[from] DeliverError),
}

/// The sender's address for a message; unknown when a trusted proxy named none that reads.
fn sender(ip: &Option<std::net::IpAddr>) -> String {
    match ip {
        Some(ip) => format!("address {ip}"),
        None => "a sender whose address the forwarding header does not tell".to_owned(),
    }
}

impl IngressError {
    /// The error class: the suffix of the problem `type` and its title.
    fn class(&self) -> (&'static str, &'static str) {
        match self {
            Self::UnknownEndpoint(_) => ("endpoint-not-found", "Unknown or disabled endpoint"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Forbidden { .. } => ("forbidden", "Sender not allowed"),
            Self::TooLarge { .. } | Self::EventTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::Malformed(e) if e.too_large() => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::RateLimited { .. } => ("rate-limited", "Rate limit exceeded"),
            Self::Overloaded => ("overloaded", "Service overloaded"),
            Self::TooManyUploads | Self::TooManyConnections => ("rate-limited", "Too many requests"),
            Self::BodyTimeout(_) => ("request-timeout", "Request timeout"),
            Self::BodyRead(_) | Self::Malformed(_) => ("malformed-payload", "Malformed payload"),
            Self::Unauthorized(_) | Self::StaleEvent(_) => ("unauthorized", "Unauthorized"),
            Self::NotDelivered(_) => ("sink-unavailable", "Sink unavailable"),
        }
    }

    /// Machine-readable reason within the class, for the `reason` member, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownEndpoint(_) => "unknown_endpoint",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Forbidden { .. } => "address_not_allowed",
            Self::TooLarge { .. } => "body_too_large",
            Self::EventTooLarge(_) => "event_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::TooManyUploads => "too_many_uploads",
            Self::TooManyConnections => "too_many_connections",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyRead(_) => "body_read_error",
            Self::Unauthorized(e) => e.reason(),
            Self::StaleEvent(_) => "stale_event",
            Self::Malformed(e) => e.reason(),
            Self::NotDelivered(DeliverError::Sink(SinkError::Timeout { .. })) => "sink_timeout",
            Self::NotDelivered(DeliverError::Sink(_)) => "sink_unavailable",
            Self::NotDelivered(DeliverError::Spool { error: OutboxError::Full { .. }, .. }) => "outbox_full",
            Self::NotDelivered(DeliverError::Spool { .. }) => "outbox_unavailable",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            Self::Overloaded | Self::TooManyUploads | Self::TooManyConnections => Some(1),
            // A full disk does not clear in seconds; the sender's retries should spread out.
            Self::NotDelivered(DeliverError::Spool { error: OutboxError::Full { .. }, .. }) => Some(30),
            // Harbor retries on its own schedule; others (and proxies) honour this.
            Self::NotDelivered(_) => Some(2),
            _ => None,
        }
    }
}

impl ResponseError for IngressError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::TooLarge { .. } | Self::EventTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(e) if e.too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } | Self::TooManyUploads | Self::TooManyConnections => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded | Self::NotDelivered(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyRead(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::StaleEvent(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (class, title) = self.class();
        let body = json!({
            "type": format!("{PROBLEM_PREFIX}{class}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "reason": self.reason(),
        });
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if let Some(secs) = self.retry_after() {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        if matches!(self, Self::MethodNotAllowed) {
            res.insert_header((header::ALLOW, HeaderValue::from_static("POST")));
        }
        // The rest of a body that stalled, or a connection over its address's cap, is not worth
        // keeping: the connection goes with the answer.
        if matches!(self, Self::BodyTimeout(_) | Self::TooManyConnections) {
            res.force_close();
        }
        res.body(body.to_string())
    }
}
