//! Per-scenario destinations (Kafka topic, JetStream stream, RabbitMQ exchange + queue, file):
//! creating them, pointing regbridge at them, counting what arrived, and removing them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The test brokers `scripts/brokers up` starts; loopback only.
pub const KAFKA: &str = "127.0.0.1:9092";
pub const NATS: &str = "nats://127.0.0.1:4222";
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Sink {
    Kafka,
    Nats,
    Amqp,
    File,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Nats => "nats",
            Self::Amqp => "amqp",
            Self::File => "file",
        }
    }
}

/// One scenario's own destination, so counting afterwards sees only its events.
pub struct Destination {
    pub sink: Sink,
    /// Topic / exchange and queue / subject prefix (lower case) / file path.
    pub name: String,
    /// JetStream stream name.
    stream: String,
    routes: PathBuf,
}

impl Destination {
    /// Creates the destination (`unique` tells it apart from every other run and scenario) and
    /// writes the routing rules sending every event there into `dir`.
    pub async fn create(sink: Sink, unique: &str, dir: &Path) -> Result<Self, String> {
        let name = match sink {
            Sink::File => dir.join(format!("events-{unique}.jsonl")).display().to_string(),
            Sink::Nats => unique.replace('-', "_"),
            _ => unique.to_owned(),
        };
        let stream = unique.replace('-', "_").to_uppercase();
        let to = match sink {
            Sink::Kafka => format!("{{ sink: kafka, topic: \"{name}\" }}"),
            Sink::Nats => format!("{{ sink: nats, subject: \"{name}.{{registry}}.{{noun}}.{{verb}}\" }}"),
            Sink::Amqp => format!(
                "{{ sink: amqp, exchange: \"{name}\", routing_key: \"{{registry}}.{{noun}}.{{verb}}\" }}"
            ),
            Sink::File => "{ sink: file }".to_owned(),
        };
        let routes = dir.join(format!("routes-{unique}.yaml"));
        std::fs::write(&routes, format!("routes:\n  - name: load\n    to: [{to}]\n"))
            .map_err(|e| format!("{}: {e}", routes.display()))?;
        match sink {
            // One partition, so partition 0 holds every record and the count is exact.
            Sink::Kafka => create_topic(&name).await?,
            // A durable queue bound to everything, as a mirror worker would have it.
            Sink::Amqp => declare_amqp(&name).await?,
            // regbridge creates the stream itself (REGBRIDGE_NATS_STREAM / _SUBJECTS).
            Sink::Nats | Sink::File => {}
        }
        Ok(Self { sink, name, stream, routes })
    }

    /// The sink's part of regbridge's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("REGBRIDGE_ROUTES".to_owned(), self.routes.display().to_string())];
        let mut add = |k: &str, v: &str| env.push((k.to_owned(), v.to_owned()));
        match self.sink {
            Sink::Kafka => add("REGBRIDGE_KAFKA_BROKERS", KAFKA),
            Sink::Nats => {
                add("REGBRIDGE_NATS_URL", NATS);
                add("REGBRIDGE_NATS_STREAM", &self.stream);
                add("REGBRIDGE_NATS_SUBJECTS", &format!("{}.>", self.name));
            }
            Sink::Amqp => add("REGBRIDGE_AMQP_URL", AMQP),
            Sink::File => add("REGBRIDGE_FILE_SINK", &self.name),
        }
        env
    }

    /// How many events the destination holds. `expected` only bounds waiting for a broker that
    /// reports with a lag; a different number is returned as it is.
    pub async fn count(&self, expected: u64) -> Result<u64, String> {
        match self.sink {
            Sink::Kafka => {
                let topic = self.name.clone();
                actix_rt::task::spawn_blocking(move || count_topic(&topic, expected))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Sink::Nats => stream_count(&self.stream).await,
            Sink::Amqp => queue_count(&self.name, expected).await,
            Sink::File => match std::fs::read(&self.name) {
                Ok(bytes) => Ok(bytecount_newlines(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(format!("{}: {e}", self.name)),
            },
        }
    }

    /// Deletes what `create` and regbridge made, so repeated runs do not fill the brokers.
    pub async fn remove(&self) {
        let done = match self.sink {
            Sink::Kafka => delete_topic(&self.name).await,
            Sink::Nats => delete_stream(&self.stream).await,
            Sink::Amqp => delete_amqp(&self.name).await,
            Sink::File => std::fs::remove_file(&self.name).map_err(|e| e.to_string()),
        };
        if let Err(e) = done {
            eprintln!("load: warning: could not remove {} {}: {e}", self.sink.name(), self.name);
        }
        let _ = std::fs::remove_file(&self.routes);
    }
}

fn bytecount_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn admin() -> Result<AdminClient<DefaultClientContext>, String> {
    ClientConfig::new().set("bootstrap.servers", KAFKA).create().map_err(|e| format!("kafka admin: {e}"))
}

pub async fn create_topic(topic: &str) -> Result<(), String> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = admin()?
        .create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &opts)
        .await
        .map_err(|e| format!("creating topic {topic} on {KAFKA}: {e} (is it up? scripts/brokers up)"))?;
    res.into_iter().try_for_each(|r| r.map(drop).map_err(|(t, e)| format!("creating topic {t}: {e}")))
}

pub async fn delete_topic(topic: &str) -> Result<(), String> {
    let res = admin()?.delete_topics(&[topic], &AdminOptions::new()).await.map_err(|e| e.to_string())?;
    res.into_iter().try_for_each(|r| r.map(drop).map_err(|(t, e)| format!("deleting {t}: {e}")))
}

/// Reads partition 0 from the beginning and counts the records. Not the watermarks: tansu's high
/// watermark came out short by the size of the last record batch minus one (7 of 8, 31 of 32 with
/// 8 and 32 producers in flight), so reading stops on silence instead: 1 s without a record once
/// `expected` are in (to catch extras), 5 s before that, and a deadline in any case.
pub fn count_topic(topic: &str, expected: u64) -> Result<u64, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", KAFKA)
        .set("group.id", format!("{topic}-counter"))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("kafka consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30 + expected / 10_000);
    let (mut count, mut last_new) = (0u64, Instant::now());
    loop {
        let settle = Duration::from_secs(if count >= expected { 1 } else { 5 });
        if last_new.elapsed() >= settle {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            eprintln!("load: warning: {topic}: still reading after the deadline; {count} so far");
            return Ok(count);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                count += 1;
                last_new = Instant::now();
            }
            Some(Err(e)) => return Err(format!("consuming {topic}: {e}")),
            None => {}
        }
    }
}

async fn jetstream() -> Result<async_nats::jetstream::Context, String> {
    let client = async_nats::connect(NATS).await.map_err(|e| format!("NATS at {NATS}: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}

async fn stream_count(stream: &str) -> Result<u64, String> {
    let js = jetstream().await?;
    let mut s = js.get_stream(stream).await.map_err(|e| format!("stream {stream}: {e}"))?;
    Ok(s.info().await.map_err(|e| format!("stream {stream} info: {e}"))?.state.messages)
}

pub async fn delete_stream(stream: &str) -> Result<(), String> {
    jetstream().await?.delete_stream(stream).await.map(drop).map_err(|e| e.to_string())
}

async fn amqp_channel() -> Result<(Connection, Channel), String> {
    let conn = actix_rt::time::timeout(
        Duration::from_secs(5),
        Connection::connect(AMQP, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| format!("RabbitMQ at {AMQP} did not answer within 5 s"))?
    .map_err(|e| format!("RabbitMQ at {AMQP}: {e}"))?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    Ok((conn, channel))
}

/// The exchange exactly as regbridge declares it (topic, durable) and a durable queue bound to `#`.
async fn declare_amqp(name: &str) -> Result<(), String> {
    let (_conn, ch) = amqp_channel().await?;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(name.into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .map_err(|e| format!("declaring exchange {name}: {e}"))?;
    let queue = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(name.into(), queue, FieldTable::default())
        .await
        .map_err(|e| format!("declaring queue {name}: {e}"))?;
    ch.queue_bind(name.into(), name.into(), "#".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(|e| format!("binding queue {name}: {e}"))
}

/// The queue's message count (passive declare). Confirmed messages are enqueued already; the
/// short re-polling only covers a count that lags its confirms.
async fn queue_count(name: &str, expected: u64) -> Result<u64, String> {
    let (_conn, ch) = amqp_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let q = ch
            .queue_declare(name.into(), passive, FieldTable::default())
            .await
            .map_err(|e| format!("queue {name}: {e}"))?;
        let n = u64::from(q.message_count());
        if n == expected || Instant::now() >= deadline {
            return Ok(n);
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn delete_amqp(name: &str) -> Result<(), String> {
    let (_conn, ch) = amqp_channel().await?;
    ch.queue_delete(name.into(), QueueDeleteOptions::default()).await.map_err(|e| e.to_string())?;
    ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()).await.map_err(|e| e.to_string())
}
