//! Integration tests against the real RabbitMQ and Postgres. Each test has its own database and
//! namespace (see `helpers`), so they run in parallel on one broker and one server.

mod amendments;
mod browser;
mod competing;
mod confirmation;
mod console;
mod contract_pipeline;
mod documents;
mod effectively_once;
mod end_to_end;
mod erasure;
mod failures;
mod helpers;
mod hostile;
mod hostile_http;
mod intake;
mod integration_examples;
mod overview;
mod revenue;
mod review;
mod seed;
mod stock;
mod verify_rules;
