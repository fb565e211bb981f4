//! `--attack N`: N stalled uploads beside the measured load. Each attacker connects from another
//! loopback address (127.0.0.3), sends the head of a signed Root delivery (fresh timestamp, a
//! signature of the right shape) announcing 1 KB, then 10 bytes of it, and nothing more; when
//! regbridge answers (429 past the address's share, 408 at the body deadline) it waits a second
//! and stalls again (a stalling attacker, not a connection flood, which is a rate limit's and
//! the ingress's matter). The legitimate senders' figures are then those under attack.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_rt::net::TcpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the stalled uploads come from: not the legitimate senders' 127.0.0.1.
const FROM: [u8; 4] = [127, 0, 0, 3];

/// The attackers running; dropping it stops them.
pub struct Attack {
    stop: Rc<Cell<bool>>,
    /// Answers the attackers got (each one ends a stall; they reconnect).
    pub answered: Rc<Cell<u64>>,
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.set(true);
    }
}

fn head(port: u16) -> Vec<u8> {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // A valid-looking `v1,` entry: the head check passes, so the upload holds a slot until the
    // deadline (the signature itself can only fail once the body is in).
    format!(
        "POST /webhooks/root HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/cloudevents+json\r\n\
         webhook-id: stall-{ts}\r\nwebhook-timestamp: {ts}\r\n\
         webhook-signature: v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\ncontent-length: 1024\r\n\r\n{{\"specv"
    )
    .into_bytes()
}

async fn one(port: u16, stop: Rc<Cell<bool>>, answered: Rc<Cell<u64>>) {
    while !stop.get() {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else { return };
        if socket.bind(SocketAddr::new(IpAddr::from(FROM), 0)).is_err() {
            return;
        }
        let Ok(mut s) = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await else {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let s: &mut TcpStream = &mut s;
        if s.write_all(&head(port)).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 256];
        // Until regbridge answers or closes, checking now and then whether to stop.
        loop {
            match actix_rt::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => {
                    answered.set(answered.get() + 1);
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Err(_) if stop.get() => return,
                Err(_) => {}
            }
        }
    }
}

/// Starts `n` attackers against regbridge on `port`.
pub fn start(port: u16, n: usize) -> Attack {
    let (stop, answered) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
    for _ in 0..n {
        actix_rt::spawn(one(port, stop.clone(), answered.clone()));
    }
    Attack { stop, answered }
}
