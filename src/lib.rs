//! regbridge: container-registry webhooks in, verified and normalized CloudEvents out.
//!
//! # Layout
//! The modules follow one request down the data path:
//!
//! - [`ingress`]: actix-web routes; the webhook handler runs the stages below in a straight
//!   line and maps every refusal to an RFC 9457 problem in one place (`ingress::IngressError`).
//! - [`verify`]: the only way from an `UnverifiedRequest` to a `VerifiedRequest`: Standard
//!   Webhooks HMAC (both key modes), Harbor's `Authorization`, MSR's `?token=`; constant-time.
//! - [`dialects`]: one file per registry (Root, Harbor, MSR) turning a verified body into
//!   [`event::Occurrence`]s; [`event`] builds the contract's CloudEvent from each.
//! - [`route`]: pure rules, compiled at start-up, from an event to sink targets.
//! - [`sinks`]: one module per destination behind the `Sink` trait; each confirms before the
//!   webhook is answered.
//!
//! Around them: [`config`] (environment + file, validated once), [`app`] (bind, run, shut down
//! in order) and [`telemetry`] (logs and metrics).

pub mod app;
pub mod config;
pub mod dialects;
pub mod event;
pub mod ingress;
pub mod route;
pub mod sinks;
pub mod telemetry;
pub mod verify;
