//! The ceilings regbridge is compared with: a bare actix-web server (HTTP cost alone) and direct
//! producers to Kafka, JetStream and RabbitMQ (broker cost alone), driven like regbridge.

use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use async_nats::jetstream;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::brokers::{Destination, Sink};
use crate::client::{self, Outcome, Worker};
use crate::report::{Row, Target};
use crate::webhook::{self, CE_HEADERS};
use crate::{brokers, sut, Ctx};

/// `--bare-server PORT`: what the harness runs in a child process for ceiling (a). Same actix-web,
/// same default worker count as regbridge (neither sets one), same body read; no verification,
/// no parsing, no publishing, `204`.
pub fn serve_bare(port: u16) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route("/readyz", web::get().to(|| async { HttpResponse::Ok().finish() }))
                .default_service(web::to(|body: web::Bytes| async move {
                    // The body is read in full, as regbridge reads it, then dropped.
                    std::hint::black_box(&body);
                    HttpResponse::NoContent().finish()
                }))
        })
        .bind(("127.0.0.1", port))?
        .run()
        .await
    })
}

/// regbridge's own Kafka producer defaults, so the ceiling pays the same idempotence, acks,
/// batching and compression. `extra` (`--kafka-set`) comes last, as regbridge applies its
/// environment after its defaults.
pub fn kafka_producer(brokers: &str, extra: &[(String, String)]) -> Result<FutureProducer, String> {
    let mut config = ClientConfig::new();
    for (k, v) in regbridge::sinks::kafka::DEFAULTS {
        config.set(*k, *v);
    }
    config.set("bootstrap.servers", brokers).set("client.id", "regbridge-load-ceiling");
    for (k, v) in extra {
        config.set(k, v);
    }
    config.create().map_err(|e| format!("kafka producer: {e}"))
}

/// Produces one record and awaits its delivery report, like one webhook in regbridge: key =
/// repository, value = the normalized `data`, `content-type` and the `ce_` headers.
pub struct KafkaWorker {
    producer: FutureProducer,
    topic: Rc<str>,
    value: Rc<[u8]>,
    id_prefix: String,
    seq: u64,
}

impl KafkaWorker {
    pub fn new(producer: FutureProducer, topic: Rc<str>, value: Rc<[u8]>, id_prefix: String) -> Self {
        Self { producer, topic, value, id_prefix, seq: 0 }
    }
}

impl Worker for KafkaWorker {
    async fn call(&mut self) -> Outcome {
        self.seq += 1;
        let id = format!("{}-{}:amd64", self.id_prefix, self.seq);
        let mut headers = OwnedHeaders::new_with_capacity(CE_HEADERS.len() + 2)
            .insert(Header { key: "content-type", value: Some("application/json") })
            .insert(Header { key: "ce_id", value: Some(id.as_str()) });
        for (name, value) in CE_HEADERS {
            headers = headers.insert(Header { key: &format!("ce_{name}"), value: Some(*value) });
        }
        let record = FutureRecord::to(&self.topic).key("python").payload(&self.value[..]).headers(headers);
        // Enqueue, then await the delivery report: what regbridge does per webhook.
        let delivery = match self.producer.send_result(record) {
            Ok(d) => d,
            Err(_) => return Outcome::Error("enqueue failed"),
        };
        match delivery.await {
            Ok(Ok(_)) => Outcome::Ok,
            Ok(Err(_)) => Outcome::Error("delivery failed"),
            Err(_) => Outcome::Error("producer closed"),
        }
    }

    fn reset(&mut self) {}
}

/// Creates the JetStream stream regbridge would (file storage, 2-minute duplicate window).
pub async fn create_stream(js: &jetstream::Context, name: &str, subjects: &str) -> Result<(), String> {
    let cfg = jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.create_stream(cfg).await.map(drop).map_err(|e| format!("creating stream {name}: {e}"))
}

/// Publishes one message and awaits its PubAck, with `Nats-Msg-Id` and `ce-` headers.
pub struct NatsWorker {
    js: jetstream::Context,
    subject: Rc<str>,
    value: bytes::Bytes,
    id_prefix: String,
    seq: u64,
}

impl NatsWorker {
    pub fn new(js: jetstream::Context, subject: Rc<str>, value: bytes::Bytes, id_prefix: String) -> Self {
        Self { js, subject, value, id_prefix, seq: 0 }
    }
}

impl Worker for NatsWorker {
    async fn call(&mut self) -> Outcome {
        self.seq += 1;
        let id = format!("{}-{}:amd64", self.id_prefix, self.seq);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert("content-type", "application/json");
        headers.insert("ce-id", id.as_str());
        for (name, value) in CE_HEADERS {
            headers.insert(format!("ce-{name}").as_str(), *value);
        }
        let subject = self.subject.to_string();
        let ack = match self.js.publish_with_headers(subject, headers, self.value.clone()).await {
            Ok(ack) => ack,
            Err(_) => return Outcome::Error("publish failed"),
        };
        match ack.await {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error("no PubAck"),
        }
    }

    fn reset(&mut self) {}
}

/// Ceiling (a): the bare actix-web server, this very binary re-executed with `--bare-server`.
pub async fn bare(ctx: &Ctx, conns: usize) -> Row {
    let row = |e: String| Row::failed_to_run(Target::BareHttp, "-", conns, e);
    let (port, exe) = match (sut::free_port(), std::env::current_exe()) {
        (Ok(p), Ok(exe)) => (p, exe),
        (Err(e), _) | (_, Err(e)) => return row(e.to_string()),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["--bare-server", &port.to_string()]);
    let label = format!("{}-bare-c{conns}", ctx.run_id);
    match sut::drive_process(ctx, cmd, port, conns, &label).await {
        Ok((run, foot)) => {
            let mut r = Row::from_run(Target::BareHttp, "-", conns, run, ctx.clk_tck);
            r.foot = foot;
            r
        }
        Err(e) => row(e),
    }
}

/// Ceiling (b) for Kafka: `conns` tasks producing and awaiting their delivery reports.
pub async fn kafka(ctx: &Ctx, conns: usize) -> Row {
    let row = |e: String| Row::failed_to_run(Target::KafkaProducer, "kafka", conns, e);
    let topic = format!("ld{}-ceiling-c{conns}", ctx.run_id);
    if let Err(e) = brokers::create_topic(&topic).await {
        return row(e);
    }
    let producer = match kafka_producer(brokers::KAFKA, &ctx.kafka_settings) {
        Ok(p) => p,
        Err(e) => return row(e),
    };
    let value: Rc<[u8]> = webhook::normalized_data(&ctx.body.render(&topic)).into();
    let topic_rc: Rc<str> = topic.as_str().into();
    let workers = (0..conns)
        .map(|w| KafkaWorker::new(producer.clone(), topic_rc.clone(), value.clone(), format!("{topic}-{w}")))
        .collect();
    let me = std::process::id();
    let run = client::drive(&ctx.phases, workers, || sut::usage(me)).await;
    drop(producer);
    let expected = run.ok + run.warm_ok;
    let mut r = Row::from_run(Target::KafkaProducer, "kafka", conns, run, ctx.clk_tck);
    let t = topic.clone();
    match actix_rt::task::spawn_blocking(move || brokers::count_topic(&t, expected)).await {
        Ok(Ok(found)) => r.count = Some((found, expected)),
        Ok(Err(e)) => r.error = Some(format!("counting: {e}")),
        Err(e) => r.error = Some(format!("counting: {e}")),
    }
    if let Err(e) = brokers::delete_topic(&topic).await {
        eprintln!("load: warning: could not delete topic {topic}: {e}");
    }
    r
}

/// Ceiling (b) for JetStream: `conns` tasks publishing and awaiting their PubAcks.
pub async fn nats(ctx: &Ctx, conns: usize) -> Row {
    let row = |e: String| Row::failed_to_run(Target::NatsPublisher, "nats", conns, e);
    let prefix = format!("ld{}_ceiling_c{conns}", ctx.run_id);
    let stream = prefix.to_uppercase();
    let js = match async_nats::connect(brokers::NATS).await {
        Ok(c) => async_nats::jetstream::new(c),
        Err(e) => return row(format!("NATS at {}: {e}", brokers::NATS)),
    };
    if let Err(e) = create_stream(&js, &stream, &format!("{prefix}.>")).await {
        return row(e);
    }
    let value = bytes::Bytes::from(webhook::normalized_data(&ctx.body.render(&prefix)));
    let subject: Rc<str> = format!("{prefix}.root.artifact.pushed").into();
    let workers = (0..conns)
        .map(|w| NatsWorker::new(js.clone(), subject.clone(), value.clone(), format!("{prefix}-{w}")))
        .collect();
    let me = std::process::id();
    let run = client::drive(&ctx.phases, workers, || sut::usage(me)).await;
    let expected = run.ok + run.warm_ok;
    let mut r = Row::from_run(Target::NatsPublisher, "nats", conns, run, ctx.clk_tck);
    match js.get_stream(&stream).await {
        Ok(mut s) => match s.info().await {
            Ok(info) => r.count = Some((info.state.messages, expected)),
            Err(e) => r.error = Some(format!("counting: {e}")),
        },
        Err(e) => r.error = Some(format!("counting: {e}")),
    }
    if let Err(e) = js.delete_stream(&stream).await {
        eprintln!("load: warning: could not delete stream {stream}: {e}");
    }
    r
}

/// Publishes one persistent message on the shared confirm channel and awaits its confirm, as
/// regbridge's AMQP sink does per webhook: `mandatory`, `message_id`, `ce-` headers.
pub struct AmqpWorker {
    channel: Channel,
    exchange: ShortString,
    value: Rc<[u8]>,
    id_prefix: String,
    seq: u64,
}

impl Worker for AmqpWorker {
    async fn call(&mut self) -> Outcome {
        self.seq += 1;
        let id = format!("{}-{}:amd64", self.id_prefix, self.seq);
        let mut headers = FieldTable::default();
        headers.insert("ce-id".into(), AMQPValue::LongString(id.as_str().into()));
        for (name, value) in CE_HEADERS {
            headers.insert(format!("ce-{name}").into(), AMQPValue::LongString((*value).into()));
        }
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.into())
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, immediate: false };
        let published = self
            .channel
            .basic_publish(
                self.exchange.clone(),
                "root.artifact.pushed".into(),
                options,
                &self.value,
                properties,
            )
            .await;
        match published {
            Err(_) => Outcome::Error("publish failed"),
            Ok(confirm) => match confirm.await {
                Ok(Confirmation::Ack(None)) => Outcome::Ok,
                Ok(_) => Outcome::Error("returned or nacked"),
                Err(_) => Outcome::Error("no confirm"),
            },
        }
    }

    fn reset(&mut self) {}
}

/// Ceiling (b) for RabbitMQ: `conns` tasks sharing one confirm channel (regbridge's layout), to
/// the same durable topic exchange and queue a regbridge scenario gets.
pub async fn amqp(ctx: &Ctx, conns: usize) -> Row {
    let row = |e: String| Row::failed_to_run(Target::AmqpPublisher, "amqp", conns, e);
    let label = format!("ld{}-ceiling-amqp-c{conns}", ctx.run_id);
    let dest = match Destination::create(Sink::Amqp, &label, ctx.dir.path()).await {
        Ok(d) => d,
        Err(e) => return row(format!("{e} (brokers: scripts/brokers up)")),
    };
    let connected = async {
        let conn = Connection::connect(brokers::AMQP, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok::<_, lapin::Error>((conn, channel))
    };
    let (conn, channel) = match connected.await {
        Ok(c) => c,
        Err(e) => {
            dest.remove().await;
            return row(format!("RabbitMQ at {}: {e}", brokers::AMQP));
        }
    };
    let value: Rc<[u8]> = webhook::normalized_data(&ctx.body.render(&label)).into();
    let exchange = ShortString::from(dest.name.as_str());
    let workers = (0..conns)
        .map(|w| AmqpWorker {
            channel: channel.clone(),
            exchange: exchange.clone(),
            value: value.clone(),
            id_prefix: format!("{label}-{w}"),
            seq: 0,
        })
        .collect();
    let me = std::process::id();
    let run = client::drive(&ctx.phases, workers, || sut::usage(me)).await;
    let _ = conn.close(200, "done".into()).await;
    let expected = run.ok + run.warm_ok;
    let mut r = Row::from_run(Target::AmqpPublisher, "amqp", conns, run, ctx.clk_tck);
    match dest.count(expected).await {
        Ok(found) => r.count = Some((found, expected)),
        Err(e) => r.error = Some(format!("counting: {e}")),
    }
    dest.remove().await;
    r
}
