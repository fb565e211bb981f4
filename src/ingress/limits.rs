//! What one sender may hold open: connections per source address, and bodies being read, per
//! source address and in total. Separate from the in-flight bound on processing, so uploads that
//! stall cannot take the slots of verified, complete requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngressError;

/// Counts per source address, with a cap; entries go when they reach zero.
struct PerAddress {
    counts: Mutex<HashMap<IpAddr, u32>>,
    max: u32,
}

impl PerAddress {
    fn new(max: u32) -> Self {
        Self { counts: Mutex::default(), max }
    }

    /// Counts one more for `ip`; `false` (and nothing counted) when it is at its cap.
    fn enter(&self, ip: IpAddr) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// One sender, as the caps count it: the same address whichever way it arrived (an IPv4 peer on
/// a dual-stack socket is `::ffff:a.b.c.d`), and for IPv6 its whole /64. A single host is
/// routinely given a /64, so counting its addresses one by one would give it billions of shares.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Open connections per source address. A connection over the cap is kept (refusing it would
/// need the listener) but every request on it is answered 429 and the connection closed.
pub struct Connections {
    per_address: PerAddress,
}

/// One connection's place in [`Connections`], kept with the connection (its data) and given
/// back when the connection closes.
pub struct ConnectionSlot {
    table: Arc<Connections>,
    ip: IpAddr,
    /// Over the cap: nothing was counted, and requests on it are refused.
    pub over: bool,
}

impl Connections {
    pub fn new(max_per_address: u32) -> Arc<Self> {
        Arc::new(Self { per_address: PerAddress::new(max_per_address) })
    }

    pub fn open(self: &Arc<Self>, ip: IpAddr) -> ConnectionSlot {
        let ip = canonical(ip);
        let over = !self.per_address.enter(ip);
        ConnectionSlot { table: self.clone(), ip, over }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if !self.over {
            self.table.per_address.leave(self.ip);
        }
    }
}

/// Bodies being read: in total, and per source address.
///
/// A header or query credential is checked completely before the body is read, so the sender of
/// such an upload has proven itself. A signed body cannot be checked before it is in: anyone
/// with well-formed signature headers gets to upload. Those unproven uploads may take at most
/// half of the total, so that stalled ones from many addresses can still not lock out the
/// registries that authenticate from the head.
pub struct Uploads {
    total: Arc<Semaphore>,
    unproven: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
}

/// Whether the sender of an upload proved its credential before the body (see [`Uploads`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Proven,
    Unproven,
}

/// One body being read; given back when it is in (or the request ends).
pub struct Upload {
    _total: OwnedSemaphorePermit,
    _unproven: Option<OwnedSemaphorePermit>,
    per_address: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.per_address.leave(self.ip);
    }
}

impl Uploads {
    pub fn new(total: usize, per_address: u32) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            unproven: Arc::new(Semaphore::new(total.div_ceil(2))),
            per_address: Arc::new(PerAddress::new(per_address)),
        }
    }

    /// A slot for reading a body from `ip`: 429 when that address has its share, 503 when all
    /// are taken (or, for an unproven sender, all of the unproven share).
    pub fn start(&self, ip: IpAddr, sender: Sender) -> Result<Upload, IngressError> {
        let ip = canonical(ip);
        if !self.per_address.enter(ip) {
            return Err(IngressError::TooManyUploads);
        }
        let unproven = match sender {
            Sender::Proven => Ok(None),
            Sender::Unproven => self.unproven.clone().try_acquire_owned().map(Some),
        };
        match unproven.and_then(|u| Ok((self.total.clone().try_acquire_owned()?, u))) {
            Ok((total, unproven)) => {
                Ok(Upload { _total: total, _unproven: unproven, per_address: self.per_address.clone(), ip })
            }
            Err(_) => {
                self.per_address.leave(ip);
                Err(IngressError::Overloaded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_capped_per_address_and_in_total_and_given_back() {
        let uploads = Uploads::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let p = Sender::Proven;
        let a1 = uploads.start(a, p).unwrap();
        let _a2 = uploads.start(a, p).unwrap();
        assert!(matches!(uploads.start(a, p), Err(IngressError::TooManyUploads)));
        let _b1 = uploads.start(b, p).unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(matches!(uploads.start(c, p), Err(IngressError::Overloaded)), "all three taken");
        drop(a1);
        let _c1 = uploads.start(c, p).unwrap();
        // `::ffff:10.0.0.2` and `10.0.0.2` are one sender.
        let b_plain: IpAddr = "10.0.0.2".parse().unwrap();
        drop(_c1);
        let _b2 = uploads.start(b_plain, p).unwrap();
        assert!(matches!(uploads.start(b_plain, p), Err(IngressError::TooManyUploads)));
    }

    #[test]
    fn unproven_senders_take_at_most_half_and_proven_ones_the_rest() {
        let uploads = Uploads::new(4, 10);
        let ip = |i: u8| IpAddr::from([10, 0, 1, i]);
        let held: Vec<_> = (0..2).map(|i| uploads.start(ip(i), Sender::Unproven).unwrap()).collect();
        assert!(matches!(uploads.start(ip(9), Sender::Unproven), Err(IngressError::Overloaded)));
        let proven: Vec<_> = (0..2).map(|i| uploads.start(ip(i), Sender::Proven).unwrap()).collect();
        assert!(
            matches!(uploads.start(ip(9), Sender::Proven), Err(IngressError::Overloaded)),
            "total reached"
        );
        drop(proven);
        drop(held);
        // Refusals counted nothing: all four places are free again, and address 9 has none.
        let again: Vec<_> = (0..4).map(|_| uploads.start(ip(9), Sender::Proven).unwrap()).collect();
        assert_eq!(again.len(), 4);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_sender() {
        let uploads = Uploads::new(10, 2);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held =
            (uploads.start(one, Sender::Proven).unwrap(), uploads.start(two, Sender::Proven).unwrap());
        assert!(matches!(uploads.start(two, Sender::Proven), Err(IngressError::TooManyUploads)));
        assert!(uploads.start(other, Sender::Proven).is_ok(), "the next /64 is another sender");
    }

    #[test]
    fn connections_over_the_cap_are_marked_and_counted_back_on_close() {
        let table = Connections::new(2);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let (one, two, three) = (table.open(ip), table.open(ip), table.open(ip));
        assert!(!one.over && !two.over && three.over);
        drop(three);
        drop(one);
        assert!(!table.open(ip).over, "a closed connection gives its place back");
    }
}
