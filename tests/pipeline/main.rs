//! Integration tests against the real RabbitMQ and Postgres. Each test has its own database and
//! namespace (see `helpers`), so they run in parallel on one broker and one server.

mod competing;
mod effectively_once;
mod end_to_end;
mod helpers;
