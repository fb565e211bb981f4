//! Where the test brokers are, and small clients to read back what regbridge published.
//! `scripts/brokers up` starts them; a missing broker fails the test with that hint.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Every attribute our events carry besides `datacontenttype`, which bindings map to the
/// protocol's own content type instead of a `ce` header.
pub const CE_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "registry",
    "origtype",
    "partitionkey",
    "traceparent",
];

fn reachable(what: &str, addr: &str, var: &str) {
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("{var}={addr} is not host:port"));
    if TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_err() {
        panic!("{what} is not reachable at {addr} ({var}); start the test brokers with `scripts/brokers up`");
    }
}

fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

pub fn kafka() -> String {
    let v = std::env::var("REGBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    reachable("Kafka", &v, "REGBRIDGE_TEST_KAFKA");
    v
}

pub fn nats() -> String {
    let v = std::env::var("REGBRIDGE_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    reachable("NATS", host_port(&v), "REGBRIDGE_TEST_NATS");
    v
}

pub fn amqp() -> String {
    let v = std::env::var("REGBRIDGE_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    reachable("RabbitMQ", host_port(&v), "REGBRIDGE_TEST_AMQP");
    v
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}-{}", hex::encode(b))
}

/// A subject prefix and a JetStream stream name no other test (or earlier run) uses.
pub fn nats_names() -> (String, String) {
    let id = unique("it").replace('-', "_");
    let stream = id.to_uppercase();
    (id, stream)
}

/// A rules file routing every event to Kafka `topic` alone.
pub fn kafka_routes(dir: &std::path::Path, topic: &str) -> String {
    routes_file(dir, &format!("routes:\n  - name: t\n    to: [{{ sink: kafka, topic: {topic} }}]\n"))
}

/// Writes a rules file into `dir` and returns its path.
pub fn routes_file(dir: &std::path::Path, yaml: &str) -> String {
    let p = dir.join(format!("{}.yaml", unique("routes")));
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

pub async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let res = admin
        .create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A record read back from Kafka, owned.
#[derive(Debug)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads every partition of `topic` from the beginning until `want` records arrived or `within`
/// passed; blocking, so call it from `spawn_blocking` or a plain thread.
pub fn read_topic(brokers: &str, topic: &str, want: usize, within: Duration) -> Vec<Record> {
    read_topic_until(brokers, topic, within, |records| records.len() >= want)
}

/// Reads every partition of `topic` from the beginning (records of one partition in order)
/// until `done` holds for what arrived, or `within` passed.
pub fn read_topic_until(
    brokers: &str,
    topic: &str,
    within: Duration,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("it-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
        .unwrap_or(1)
        .max(1);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(owned(&m.expect("consume")));
        }
    }
    out
}

fn owned(m: &BorrowedMessage<'_>) -> Record {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// A broker process of a test's own, which it may pause and resume without disturbing the
/// others. Resumed and killed on drop.
pub struct Private(std::process::Child);

impl Private {
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} failed");
    }

    /// Freezes the broker: connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private Kafka-compatible broker (tansu, in memory); `process` pauses and resumes it.
pub struct PrivateKafka {
    pub process: Private,
    pub addr: String,
}

fn tansu_binary() -> std::path::PathBuf {
    let home = std::env::var("CARGO_HOME").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
    });
    let candidates = [home.join("bin/tansu"), std::path::PathBuf::from("tansu")];
    candidates
        .into_iter()
        .find(|p| std::process::Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("tansu is not installed; run `scripts/brokers up` (it installs it)")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PrivateKafka {
    pub fn start() -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let log = std::env::temp_dir().join(format!("{}.log", unique("tansu")));
        let mut child = std::process::Command::new(tansu_binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("tansu exited ({status}); is it built with `--features dynostore`? {err}");
            }
            assert!(Instant::now() < deadline, "private tansu did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { process: Private(child), addr }
    }
}

/// A private NATS server with JetStream (Debian's `nats-server`, which `scripts/brokers up`
/// installs) that a test may pause and resume. Killed on drop.
pub struct PrivateNats {
    pub process: Private,
    pub url: String,
    _store: tempfile::TempDir,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let store = tempfile::tempdir().unwrap();
        let bin = ["/usr/sbin/nats-server", "nats-server"]
            .into_iter()
            .find(|b| {
                std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success())
            })
            .expect("nats-server is not installed; run `scripts/brokers up` (it installs it)");
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let process = Private(child);
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "private nats-server did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { process, url: format!("nats://{addr}"), _store: store }
    }
}
