//! Deliver: the stage after routing. Each routed sink gets its deliveries directly and must
//! confirm within the budget; what a sink did not confirm, and whatever must queue behind a
//! sink's backlog, is made durable in the outbox instead, whose relay delivers it later.
//!
//! ```text
//! route → deliver → sinks                 (confirmed: 200)
//!                 ↘ outbox → relay → sinks (spooled: 202 "queued")
//! ```

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::outbox::{Outbox, OutboxError, Ticket};
use crate::sinks::{Delivery, SinkError, Sinks};

/// The sinks, and the outbox when it is on.
#[derive(Clone)]
pub struct Deliver {
    sinks: Sinks,
    outbox: Option<Outbox>,
}

/// How a request's deliveries ended, when none was lost.
#[derive(Debug)]
pub enum Delivered {
    /// Every routed sink confirmed.
    Confirmed,
    /// These sinks' deliveries are in the outbox, to be relayed.
    Queued(Vec<Queued>),
}

/// One sink whose deliveries were spooled, and why.
#[derive(Debug, serde::Serialize)]
pub struct Queued {
    pub sink: &'static str,
    pub reason: String,
}

/// Deliveries that are neither confirmed nor durable: the sender must retry.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("not every sink confirmed the event: {0}")]
    Sink(#[from] SinkError),
    #[error("{cause}; and the outbox could not take the event: {error}")]
    Spool { cause: String, error: OutboxError },
}

/// Budget kept back from the direct publishes for spooling what they leave: a quarter, within
/// 50–500 ms (an `fsync` takes milliseconds; the rest absorbs a busy disk).
pub fn spool_reserve(budget: Duration) -> Duration {
    (budget / 4).clamp(Duration::from_millis(50), Duration::from_millis(500)).min(budget / 2)
}

/// A sink's deliveries to spool, what keeps its queue in backlog meanwhile, and why.
type Spool = (&'static str, Vec<Delivery>, Ticket, String);

impl Deliver {
    pub fn new(sinks: Sinks, outbox: Option<Outbox>) -> Self {
        Self { sinks, outbox }
    }

    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// Delivers `deliveries` (`(sink, delivery)` pairs from the router), the whole answer within
    /// `budget`: every sink concurrently, then the outbox for what they left.
    pub async fn deliver(
        &self,
        deliveries: Vec<(&'static str, Delivery)>,
        budget: Duration,
    ) -> Result<Delivered, DeliverError> {
        let started = Instant::now();
        let mut batches = by_sink(deliveries);
        let Some(outbox) = &self.outbox else {
            self.publish_all(&batches, budget).await.into_iter().try_for_each(|(_, r)| r)?;
            return Ok(Delivered::Confirmed);
        };
        let publish_budget = budget.saturating_sub(spool_reserve(budget));
        // Behind a backlog, a delivery waits its turn: publishing it now would overtake the
        // entries of the same repository that are still queued.
        let behind = |sink: &'static str| {
            outbox.behind(sink).map(|t| (t, format!("{sink} has a backlog in the outbox")))
        };
        // One sink and no backlog is the common case: no bookkeeping for several.
        if let [(sink, _)] = batches.as_slice() {
            let sink = *sink;
            let (_, batch) = batches.pop().expect("one batch");
            let spool = match behind(sink) {
                Some((ticket, reason)) => (sink, batch, ticket, reason),
                None => match self.sinks.publish(sink, &batch, publish_budget).await {
                    Ok(()) => return Ok(Delivered::Confirmed),
                    Err(e) => {
                        let reason = e.to_string();
                        let ticket = outbox.enter(sink, &reason).ok_or(DeliverError::Sink(e))?;
                        (sink, batch, ticket, reason)
                    }
                },
            };
            return spool_all(outbox, vec![spool], budget.saturating_sub(started.elapsed())).await;
        }
        let mut spools: Vec<Spool> = Vec::new();
        let mut direct = Vec::with_capacity(batches.len());
        for (sink, batch) in batches {
            match behind(sink) {
                Some((ticket, reason)) => spools.push((sink, batch, ticket, reason)),
                None => direct.push((sink, batch)),
            }
        }
        let results = self.publish_all(&direct, publish_budget).await;
        for ((sink, batch), (_, result)) in direct.into_iter().zip(results) {
            if let Err(e) = result {
                let reason = e.to_string();
                let ticket = outbox.enter(sink, &reason).ok_or(DeliverError::Sink(e))?;
                spools.push((sink, batch, ticket, reason));
            }
        }
        if spools.is_empty() {
            return Ok(Delivered::Confirmed);
        }
        spool_all(outbox, spools, budget.saturating_sub(started.elapsed())).await
    }

    /// Publishes each sink's batch concurrently within `budget`.
    async fn publish_all(
        &self,
        batches: &[(&'static str, Vec<Delivery>)],
        budget: Duration,
    ) -> Vec<(&'static str, Result<(), SinkError>)> {
        // One sink is the common case: awaited directly, without a join.
        if let [(sink, batch)] = batches {
            return vec![(sink, self.sinks.publish(sink, batch, budget).await)];
        }
        let all = batches
            .iter()
            .map(|(sink, batch)| async move { (*sink, self.sinks.publish(sink, batch, budget).await) });
        join_all(all).await
    }
}

/// Makes every spool durable, concurrently, within `within`: `Queued` naming each sink, or the
/// first failure.
async fn spool_all(outbox: &Outbox, spools: Vec<Spool>, within: Duration) -> Result<Delivered, DeliverError> {
    let spooled = join_all(spools.into_iter().map(|(sink, batch, ticket, reason)| async move {
        let result = outbox.spool(ticket, &batch, within).await;
        (Queued { sink, reason }, result)
    }))
    .await;
    let mut queued = Vec::with_capacity(spooled.len());
    for (q, result) in spooled {
        if let Err(error) = result {
            return Err(DeliverError::Spool { cause: q.reason, error });
        }
        queued.push(q);
    }
    Ok(Delivered::Queued(queued))
}

/// The deliveries grouped per sink, sinks in the order the router named them.
fn by_sink(deliveries: Vec<(&'static str, Delivery)>) -> Vec<(&'static str, Vec<Delivery>)> {
    let mut batches: Vec<(&'static str, Vec<Delivery>)> = Vec::with_capacity(1);
    for (name, d) in deliveries {
        match batches.iter_mut().find(|(n, _)| *n == name) {
            Some((_, batch)) => batch.push(d),
            None => batches.push((name, vec![d])),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_reserve_leaves_most_of_the_budget_to_the_brokers() {
        assert_eq!(spool_reserve(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(spool_reserve(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(spool_reserve(Duration::from_secs(30)), Duration::from_millis(500));
        assert_eq!(spool_reserve(Duration::from_millis(100)), Duration::from_millis(50));
        assert_eq!(spool_reserve(Duration::from_millis(60)), Duration::from_millis(30));
    }
}
