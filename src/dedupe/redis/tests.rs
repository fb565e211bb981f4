use bytes::Bytes;

use super::*;

/// The test Redis (`scripts/brokers up` starts it and prints `REGBRIDGE_TEST_REDIS`).
fn test_url() -> RedisUrl {
    let url = std::env::var("REGBRIDGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let parsed = RedisUrl::parse(&url).expect("REGBRIDGE_TEST_REDIS is a redis:// URL");
    let addr = (parsed.host.as_str(), parsed.port);
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(reachable, "Redis is not reachable at {url}; start it with `scripts/brokers up`");
    parsed
}

fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}:{}", hex::encode(b))
}

const WAIT: Duration = Duration::from_secs(5);

fn one(args: &[&[u8]]) -> Pipeline {
    let mut p = Pipeline::new();
    p.cmd(args);
    p
}

#[test]
fn urls_parse_with_defaults_and_mask_their_password() {
    let u = RedisUrl::parse("redis://127.0.0.1").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.db, u.username.as_deref()), ("127.0.0.1", 6379, 0, None));
    let u = RedisUrl::parse("redis://app:p%40ss%3Aw0rd@redis.internal:6380/2").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.db), ("redis.internal", 6380, 2));
    assert_eq!(u.username.as_deref(), Some("app"));
    assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss:w0rd"));
    assert_eq!(u.describe(), "redis://app:[redacted]@redis.internal:6380/2");
    assert!(!format!("{u:?}").contains("p@ss"));
    let u = RedisUrl::parse("redis://:secret@[::1]:7000/").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.username.as_deref()), ("::1", 7000, None));
    assert_eq!(u.describe(), "redis://:[redacted]@[::1]:7000");
    for bad in [
        "rediss://h",
        "http://h",
        "h:6379",
        "redis://",
        "redis://h:port",
        "redis://h/x",
        "redis://h?protocol=3",
        "redis://:%zz@h",
    ] {
        let err = RedisUrl::parse(bad).unwrap_err();
        assert!(!err.is_empty(), "{bad}");
    }
    assert!(!RedisUrl::parse("ftp://user:hunter2@h").unwrap_err().contains("hunter2"));
}

#[test]
fn commands_are_encoded_as_arrays_of_bulk_strings() {
    let mut p = Pipeline::new();
    p.cmd(&[b"SET", b"k", b"", b"NX"]).cmd(&[b"PING"]);
    assert_eq!(&p.buf[..], b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$2\r\nNX\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(p.len(), 2);
}

#[test]
fn replies_parse_whole_or_wait_for_more() {
    let all: &[u8] = b"+OK\r\n-ERR wrong\r\n:3\r\n$-1\r\n$5\r\nhe\r\no\r\n*2\r\n:1\r\n$1\r\nx\r\n*-1\r\n";
    let want = [
        Reply::Simple("OK".into()),
        Reply::Error("ERR wrong".into()),
        Reply::Integer(3),
        Reply::Bulk(None),
        Reply::Bulk(Some(Bytes::from_static(b"he\r\no"))),
        Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(Some(Bytes::from_static(b"x")))])),
        Reply::Array(None),
    ];
    // Fed one byte at a time, every reply comes out once complete, and only then.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in all {
        buf.extend_from_slice(&[b]);
        while let Some(r) = parse(&mut buf).unwrap() {
            got.push(r);
        }
    }
    assert_eq!(got, want);
    assert!(buf.is_empty());
    for bad in [&b"?x\r\n"[..], b":12a\r\n", b"$3\r\nabcd\r\n", b"$99999999999\r\n", b"\r\n"] {
        assert!(parse(&mut BytesMut::from(bad)).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[tokio::test]
async fn set_nx_px_and_exists_against_the_real_server() {
    let client = Client::spawn(test_url());
    let (a, b) = (unique("regbridge-test:a"), unique("regbridge-test:b"));
    let exists = |keys: &[&str]| {
        let mut args: Vec<&[u8]> = vec![b"EXISTS"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        one(&args)
    };
    assert_eq!(client.run(exists(&[&a, &b]), WAIT).await.unwrap(), [Reply::Integer(0)]);
    // Pipelined: two commands, one write, two replies in order.
    let mut p = Pipeline::new();
    p.cmd(&[b"SET", a.as_bytes(), b"1", b"NX", b"PX", b"60000"]);
    p.cmd(&[b"SET", a.as_bytes(), b"2", b"NX", b"PX", b"60000"]);
    assert_eq!(client.run(p, WAIT).await.unwrap(), [Reply::Simple("OK".into()), Reply::Bulk(None)]);
    assert_eq!(
        client.run(one(&[b"GET", a.as_bytes()]), WAIT).await.unwrap(),
        [Reply::Bulk(Some(Bytes::from_static(b"1")))],
        "NX kept the first value"
    );
    match client.run(one(&[b"PTTL", a.as_bytes()]), WAIT).await.unwrap()[..] {
        [Reply::Integer(ms)] => assert!(ms > 0 && ms <= 60_000, "{ms}"),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(client.run(exists(&[&a, &b]), WAIT).await.unwrap(), [Reply::Integer(1)]);
    // An error reply concerns its command alone; the connection goes on.
    let replies = client.run(one(&[b"NO-SUCH-COMMAND"]), WAIT).await.unwrap();
    assert!(matches!(&replies[..], [Reply::Error(e)] if e.starts_with("ERR")), "{replies:?}");
    assert_eq!(client.run(one(&[b"PING"]), WAIT).await.unwrap(), [Reply::Simple("PONG".into())]);
}

#[tokio::test]
async fn concurrent_callers_share_the_connection_and_each_gets_its_own_replies() {
    let client = Client::spawn(test_url());
    let base = unique("regbridge-test:c");
    let calls = (0..200).map(|i| {
        let client = client.clone();
        let key = format!("{base}:{i}");
        async move {
            let mut p = Pipeline::new();
            p.cmd(&[b"SET", key.as_bytes(), i.to_string().as_bytes(), b"PX", b"60000"]);
            p.cmd(&[b"GET", key.as_bytes()]);
            (i, client.run(p, WAIT).await.unwrap())
        }
    });
    for (i, replies) in futures_util::future::join_all(calls).await {
        assert_eq!(replies[1], Reply::Bulk(Some(Bytes::from(i.to_string()))), "call {i}");
    }
}

#[tokio::test]
async fn a_closed_port_fails_fast_and_keeps_failing_without_hanging() {
    // Bound, then dropped: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = Client::spawn(RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap());
    let first = client.run(one(&[b"PING"]), WAIT).await.unwrap_err();
    assert!(matches!(first, RedisError::Connect { .. }), "{first:?}");
    // Within the backoff: refused at once, without another connect.
    let second = client.run(one(&[b"PING"]), WAIT).await.unwrap_err();
    assert!(matches!(second, RedisError::Down(_) | RedisError::Connect { .. }), "{second:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_a_caller_its_timeout_only() {
    // Accepts connections and reads, answers nothing (a frozen server looks like this).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = Client::spawn(RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap());
    let timeout = Duration::from_millis(50);
    let err = client.run(one(&[b"PING"]), timeout).await.unwrap_err();
    assert_eq!(err, RedisError::Timeout(timeout));
}

#[tokio::test]
async fn a_wrong_password_is_a_connect_error_naming_the_server_answer() {
    let mut url = test_url();
    url.password = Some(Secret::new("not-the-password"));
    let client = Client::spawn(url);
    match client.run(one(&[b"PING"]), WAIT).await.unwrap_err() {
        RedisError::Connect { error, .. } => assert!(!error.contains("not-the-password"), "{error}"),
        other => panic!("{other:?}"),
    }
}
