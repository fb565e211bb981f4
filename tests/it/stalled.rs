//! Stalled uploads against the real server: 1,100 connections that send their headers and 10 bytes
//! of a 1 KB body, then nothing. Without a credential each is refused at once; with one, an
//! address gets its share of upload slots and the rest are refused, and the stalled ones end with
//! 408 at the body deadline, giving their slots back. Meanwhile a legitimate sender is served
//! within seconds.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::*;

const STALLED: usize = 1100;
/// The attackers' source address; the legitimate sender uses another one of loopback's.
const ATTACKER: [u8; 4] = [127, 0, 0, 1];
const SENDER: [u8; 4] = [127, 0, 0, 2];

async fn connect(from: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}

/// A Harbor delivery's head announcing 1 KB, and the first 10 bytes of it.
fn stalled_head(auth: &str) -> Vec<u8> {
    format!(
        "POST /webhooks/harbor HTTP/1.1\r\nhost: regbridge\r\ncontent-type: application/json\r\n\
         authorization: {auth}\r\ncontent-length: 1024\r\n\r\n{{\"type\":\"P"
    )
    .into_bytes()
}

/// The status of the answer on `s`, or `None` if none came within `within` (or it closed).
async fn status(s: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(within, s.read(&mut buf)).await.ok()?.ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A complete Harbor delivery from `from`; its status.
async fn deliver(from: [u8; 4], port: u16) -> u16 {
    let body = fixture("harbor/push_artifact.default.json");
    let mut s = connect(from, port).await;
    let head = format!(
        "POST /webhooks/harbor HTTP/1.1\r\nhost: regbridge\r\ncontent-type: application/json\r\n\
         authorization: {HARBOR_AUTH}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(&[head.as_bytes(), &body].concat()).await.unwrap();
    status(&mut s, Duration::from_secs(10)).await.unwrap_or(0)
}

/// The stalled uploads, each with when it sent its head.
async fn stall(port: u16, auth: &str) -> Vec<(TcpStream, Instant)> {
    let mut all = Vec::with_capacity(STALLED);
    for _ in 0..STALLED / 100 {
        all.extend(
            join_all((0..100).map(|_| async move {
                let mut s = connect(ATTACKER, port).await;
                s.write_all(&stalled_head(auth)).await.unwrap();
                (s, Instant::now())
            }))
            .await,
        );
    }
    all
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[actix_rt::test]
async fn stalled_uploads_without_a_credential_are_refused_at_once_and_hold_nothing() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_BODY_TIMEOUT", "3s")).await;
    let port = port(&app);
    let mut stalled = stall(port, "Bearer forged").await;

    let started = Instant::now();
    assert_eq!(deliver(SENDER, port).await, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // Every stalled one was answered without its body: 401, or 429 past its address's share of
    // connections; none waits for the deadline.
    let answers = join_all(stalled.iter_mut().map(|(s, _)| status(s, Duration::from_secs(5)))).await;
    let unanswered = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(unanswered, 0, "stalled uploads without a credential left waiting");
    assert!(answers.iter().all(|a| matches!(a, Some(401 | 429))), "{answers:?}");
    assert!(answers.contains(&Some(401)));
}

#[actix_rt::test]
async fn stalled_authenticated_uploads_get_408_at_the_deadline_and_give_their_slots_back() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_BODY_TIMEOUT", "3s")).await;
    let port = port(&app);
    let mut stalled = stall(port, HARBOR_AUTH).await;

    let started = Instant::now();
    assert_eq!(deliver(SENDER, port).await, 200, "another address is served while they stall");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let answers = join_all(stalled.iter_mut().map(|(s, sent)| async move {
        let status = status(s, Duration::from_secs(30)).await;
        (status, sent.elapsed())
    }))
    .await;
    let count = |code| answers.iter().filter(|(a, _)| *a == Some(code)).count();
    let (timed_out, refused) = (count(408), count(429));
    // The address's share (64) hold upload slots until the deadline, then give them back (so a
    // later one of the 1,100 may take one while the rest are still connecting); the others are
    // refused at once. Every one is answered.
    assert!(timed_out >= 64, "{timed_out} timed out");
    assert_eq!(timed_out + refused, STALLED, "{answers:?}");
    for (status, after) in &answers {
        if *status == Some(408) {
            assert!(*after >= Duration::from_millis(2900), "408 before the deadline: {after:?}");
        }
    }
    // Their slots are back: the attacker's own address may upload again.
    assert_eq!(deliver(ATTACKER, port).await, 200);
}
