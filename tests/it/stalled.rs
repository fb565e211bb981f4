//! Stalled uploads against the real server: 1,100 connections that send their headers and 10 bytes
//! of a 1 KB body, then nothing. Without a credential each is refused at once; with one, an
//! address gets its share of upload slots and the rest are refused, and the stalled ones end with
//! 408 at the body deadline, giving their slots back. Meanwhile a legitimate sender is served
//! within seconds. Signed bodies (Root), whose credential cannot be checked before the body,
//! take at most half of the upload slots, whatever the number of addresses stalling them.

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
    stalled_request("/webhooks/harbor", &format!("authorization: {auth}\r\n"))
}

/// A head for `path` with `extra` header lines, announcing 1 KB, and the first 10 bytes of it.
fn stalled_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: regbridge\r\ncontent-type: application/json\r\n\
         {extra}content-length: 1024\r\n\r\n{{\"type\":\"P"
    )
    .into_bytes()
}

/// Root's signature headers, well-formed and fresh but signing nothing (no secret is needed to
/// write them): only the body could show they are forged.
fn forged_root_headers() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!(
        "webhook-id: msg_forged\r\nwebhook-timestamp: {now}\r\n\
         webhook-signature: v1,{}\r\n",
        "0".repeat(64)
    )
}

/// The whole answer on `s` up to the connection's close: status, `content-type` and body.
/// `None` if it did not come, or the connection stayed open, within `within`.
async fn answer_and_close(s: &mut TcpStream, within: Duration) -> Option<(u16, String, String)> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        // A close with the unread rest of the upload still queued is a reset, not an end of
        // stream: either way the connection is gone.
        while let Ok(n @ 1..) = s.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    let text = String::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_owned())?;
    Some((status, content_type, body.to_owned()))
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
    let head = format!("authorization: {HARBOR_AUTH}\r\n");
    send(from, port, "/webhooks/harbor", &head, &body).await
}

/// A complete request from `from`; its status.
async fn send(from: [u8; 4], port: u16, path: &str, extra: &str, body: &[u8]) -> u16 {
    let mut s = connect(from, port).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: regbridge\r\ncontent-type: application/json\r\n\
         {extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(&[head.as_bytes(), body].concat()).await.unwrap();
    status(&mut s, Duration::from_secs(10)).await.unwrap_or(0)
}

/// The stalled uploads, each with when it sent its head.
async fn stall(port: u16, auth: &str) -> Vec<(TcpStream, Instant)> {
    stall_from(&[ATTACKER], port, STALLED, &stalled_head(auth)).await
}

/// `n` connections spread over the addresses `from`, each sending `head` and then nothing.
async fn stall_from(from: &[[u8; 4]], port: u16, n: usize, head: &[u8]) -> Vec<(TcpStream, Instant)> {
    let mut all = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        all.extend(
            join_all(batch.iter().map(|&i| async move {
                let mut s = connect(from[i % from.len()], port).await;
                s.write_all(head).await.unwrap();
                (s, Instant::now())
            }))
            .await,
        );
    }
    all
}

/// No rate limit: the tests are about upload slots, not the endpoint's rate (which counts only
/// verified requests anyway).
fn options(body_timeout: &str) -> Options {
    Options::default().with("REGBRIDGE_BODY_TIMEOUT", body_timeout).with("REGBRIDGE_RATE_LIMIT", "0")
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[actix_rt::test]
async fn stalled_uploads_without_a_credential_are_refused_at_once_and_hold_nothing() {
    let app = spawn_app_with(options("3s")).await;
    let port = port(&app);
    let mut stalled = stall(port, "Bearer forged").await;
    // The other ways a head can lack its credential: a wrong `?token=`, Root without signature
    // headers, Root with a stale timestamp.
    let stale = "webhook-id: m\r\nwebhook-timestamp: 1000000000\r\nwebhook-signature: v1,AAAA\r\n";
    for (path, extra) in
        [("/webhooks/msr?token=wrong", ""), ("/webhooks/root", ""), ("/webhooks/root", stale)]
    {
        stalled.extend(stall_from(&[ATTACKER], port, 20, &stalled_request(path, extra)).await);
    }

    let started = Instant::now();
    assert_eq!(deliver(SENDER, port).await, 200);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    // Every stalled one was answered without its body, and its connection closed: 401, or 429
    // past its address's share of connections; none waits for the deadline.
    let answers =
        join_all(stalled.iter_mut().map(|(s, _)| answer_and_close(s, Duration::from_secs(2)))).await;
    let unanswered = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(unanswered, 0, "stalled uploads without a credential left waiting or connected");
    assert!(answers.iter().flatten().all(|(s, ..)| matches!(s, 401 | 429)), "{answers:?}");
    let refused_401 = answers.iter().flatten().filter(|(s, ..)| *s == 401).count();
    assert!(refused_401 >= 60, "{refused_401} refused 401");
    for (_, content_type, body) in answers.iter().flatten() {
        assert_eq!(content_type, "application/problem+json", "{body}");
    }
}

#[actix_rt::test]
async fn stalled_authenticated_uploads_get_408_at_the_deadline_and_give_their_slots_back() {
    // Few processing slots and room for every connection: what holds the stalled ones back is
    // the per-address upload share alone, and a processing slot taken before the body was in
    // would leave none for the legitimate sender.
    let app = spawn_app_with(
        options("3s")
            .with("REGBRIDGE_MAX_IN_FLIGHT", "8")
            .with("REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS", "2000"),
    )
    .await;
    let port = port(&app);
    let began = Instant::now();
    let mut stalled = stall(port, HARBOR_AUTH).await;
    let stalling = began.elapsed();

    let started = Instant::now();
    assert_eq!(deliver(SENDER, port).await, 200, "another address is served while they stall");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());

    let answers = join_all(stalled.iter_mut().map(|(s, sent)| async move {
        let answer = answer_and_close(s, Duration::from_secs(30)).await;
        (answer, sent.elapsed())
    }))
    .await;
    let count = |code| answers.iter().filter(|(a, _)| a.as_ref().is_some_and(|a| a.0 == code)).count();
    let (timed_out, refused) = (count(408), count(429));
    // The address's share (64) hold upload slots until the deadline, then give them back; the
    // others are refused at once. A later one of the 1,100 may take a slot given back while the
    // rest are still connecting: at most 64 more per deadline that passed meanwhile.
    let windows = 1 + (stalling.as_millis() / 3000) as usize;
    assert!((64..=64 * windows).contains(&timed_out), "{timed_out} timed out over {stalling:?}");
    assert_eq!(timed_out + refused, STALLED, "every one answered and closed: {answers:?}");
    for (answer, after) in &answers {
        let (status, content_type, body) = answer.as_ref().unwrap();
        assert_eq!(content_type, "application/problem+json", "{body}");
        if *status == 408 {
            assert!(*after >= Duration::from_millis(2900), "408 before the deadline: {after:?}");
            assert!(body.contains("body_timeout"), "{body}");
        }
    }
    // Their slots are back: the attacker's own address may upload again.
    assert_eq!(deliver(ATTACKER, port).await, 200);
}

#[actix_rt::test]
async fn signed_body_uploads_from_many_addresses_take_half_the_slots_and_never_harbors() {
    // 20 addresses, 8 uploads each, all with well-formed forged Root signature headers: more
    // than the 64 slots there are. They get the unproven half (32); the rest are refused at once.
    let app = spawn_app_with(
        options("3s").with("REGBRIDGE_MAX_UPLOADS", "64").with("REGBRIDGE_MAX_UPLOADS_PER_ADDRESS", "8"),
    )
    .await;
    let port = port(&app);
    let attackers: Vec<[u8; 4]> = (10..30).map(|i| [127, 0, 1, i]).collect();
    let head = stalled_request("/webhooks/root", &forged_root_headers());
    let mut stalled = stall_from(&attackers, port, 160, &head).await;

    // A Harbor delivery, whose credential is in its head, is served while they stall ...
    assert_eq!(deliver(SENDER, port).await, 200);
    // ... and so are 30 more Harbor uploads at once, held open beside the Root ones.
    let mut harbors = stall_from(
        &[[127, 0, 2, 1], [127, 0, 2, 2], [127, 0, 2, 3], [127, 0, 2, 4]],
        port,
        30,
        &stalled_head(HARBOR_AUTH),
    )
    .await;

    let answers =
        join_all(stalled.iter_mut().map(|(s, _)| answer_and_close(s, Duration::from_secs(30)))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().map_or(0, |a| a.0)).collect();
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    // The held ones end at the deadline; the 503 ones were refused at once. No slot is given back
    // before the deadline, so exactly the unproven half was held.
    assert_eq!(count(408), 32, "{statuses:?}");
    assert_eq!(count(503), 160 - 32, "{statuses:?}");
    let harbor_answers =
        join_all(harbors.iter_mut().map(|(s, _)| answer_and_close(s, Duration::from_secs(30)))).await;
    assert!(harbor_answers.iter().all(|a| a.as_ref().is_some_and(|a| a.0 == 408)), "{harbor_answers:?}");
    assert!(app.events().len() == 1, "only the one legitimate delivery is published");
}
