//! regbridge: container-registry webhooks in, verified and normalized CloudEvents out.
//!
//! # Layout
//! The modules follow one request down the data path:
//!
//! ```text
//! ingress → verify → dialects → route → deliver → sinks
//!                                               ↘ outbox → relay → sinks
//! ```
//!
//! - [`ingress`]: actix-web routes; the webhook handler runs the stages below in a straight
//!   line and maps every refusal to an RFC 9457 problem in one place (`ingress::IngressError`).
//! - [`verify`]: the only way from an `UnverifiedRequest` to a `VerifiedRequest`: Standard
//!   Webhooks HMAC (both key modes), a static header, a `?token=`, an HMAC of the body with the
//!   dialect's algorithm and encoding; constant-time.
//! - [`dialects`]: one file per registry (Root, Harbor, MSR, Distribution and GitLab, Docker
//!   Hub, Quay, GitHub, JFrog, Nexus, ACR, GAR, ECR, any CloudEvents sender) turning a verified
//!   body into [`event::Occurrence`]s; [`event`] builds the contract's CloudEvent from each.
//! - [`route`]: pure rules, compiled at start-up, from an event to sink targets.
//! - [`dedupe`]: replay suppression before delivering: ids accepted before (in memory or in
//!   Redis shared by replicas) answer `duplicate`, and events outside a freshness window are refused.
//! - [`deliver`]: publishes to every routed sink within the budget; what a sink does not
//!   confirm (or what must queue behind its backlog) goes to the [`outbox`] instead.
//! - [`sinks`]: one module per destination behind the `Sink` trait; each confirms before the
//!   webhook is answered.
//! - [`outbox`]: checksummed segment files on local disk, one queue per sink, and the relay
//!   that delivers them in order once the sink takes them again.
//!
//! Around them: [`config`] (environment + file, validated once), [`app`] (bind, run, shut down
//! in order), [`group_commit`] (one `fsync` for every concurrent writer: file sink and outbox),
//! [`explain`] (`regbridge normalize`: the stages above on one payload, publishing nothing),
//! [`tls`] (the listener's certificate, reloaded when its files change, and the client
//! certificates senders may prove themselves with) and [`telemetry`] (logs and metrics).

pub mod app;
pub mod config;
pub mod dedupe;
pub mod deliver;
pub mod dialects;
pub mod event;
pub mod explain;
pub mod group_commit;
pub mod ingress;
pub mod outbox;
pub mod route;
pub mod sinks;
pub mod telemetry;
pub mod tls;
pub mod verify;
