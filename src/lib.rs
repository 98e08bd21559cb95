//! # fulfilment
//!
//! An order-fulfilment pipeline on RabbitMQ and Postgres. An order goes through six stages —
//! verify, prepare, documents, handover, confirm, revenue — each a worker consuming its own
//! queue and emitting the next event, each effectively once.
//!
//! ## Module map
//!
//! - [`domain`]: orders, reference data, states, documents, money and event payloads. No I/O.
//! - [`render`]: documents as PDF.
//! - [`envelope`]: the CloudEvents envelope and trace context every message travels in.
//! - [`stages`]: one module per stage; the business of each stage, free of AMQP.
//! - [`worker`]: runs a stage over its queue with the effectively-once rule (inbox, allowed
//!   transition, record, outbox, commit, publish with confirms, ack).
//! - [`relay`]: publishes outbox rows a crash left behind.
//! - [`scheduler`]: turns due timers (deemed acceptance, revenue instalments) into events.
//! - [`pipeline`]: starts and stops the workers and relay of one process.
//! - [`partitions`]: per-order partitions of a stage's input, shared out between processes.
//! - [`messaging`]: everything AMQP: connection, topology, publisher, inbound deliveries.
//! - [`db`]: everything SQL: migrations, inbox, outbox, orders, records, review cases.
//! - [`review`]: the human-review desk: cases, people and their authority, the HTTP API.
//! - [`console`]: the web console over the review desk and the orders, with its JSON endpoints.
//! - [`client`]: publishing into the pipeline from outside (`submit`, `confirm`).
//! - [`intake`]: the same over HTTP, for systems that do not speak AMQP.
//! - [`overview`]: what an operator watches: orders by state, open cases, backlogs, queues.
//! - [`status`]: an order's state and timeline. [`export`]: an order's documents as files.
//! - [`seed`]: loading reference data from a file.
//! - [`erasure`]: erasing a customer's personal data while the financial records stay.
//! - [`contract`]: JSON Schemas of every event payload, generated from the types.
//! - [`demo`]: the sample traffic of `fulfilment demo`.
//! - [`bench`]: `fulfilment bench`, the pipeline's throughput and latency against the broker's
//!   own ceiling.
//! - [`settings`]: layered configuration. [`telemetry`]: logging and traces. [`metrics`]:
//!   Prometheus metrics of the process. [`health`]: liveness and readiness. [`cli`]: the
//!   command line.

pub mod bench;
pub mod cli;
pub mod client;
pub mod console;
pub mod contract;
pub mod db;
pub mod demo;
pub mod digest;
pub mod domain;
pub mod envelope;
pub mod erasure;
pub mod export;
pub mod health;
pub mod intake;
pub mod messaging;
pub mod metrics;
pub mod overview;
pub mod partitions;
pub mod periodic;
pub mod pipeline;
pub mod reissue;
pub mod relay;
pub mod render;
pub mod review;
pub mod scheduler;
pub mod seed;
pub mod settings;
pub mod stages;
pub mod status;
pub mod telemetry;
pub mod worker;
