//! The human-review desk: what stages could not finish, and the people with the authority to
//! resolve it.
//!
//! - [`people`]: who may act (bearer tokens stored hashed) and with which roles.
//! - [`desk`]: listing, showing and resolving cases (retry, amend, cancel, close), each action
//!   recorded with who, when and why, and exactly once even when two people act at once.
//! - [`cancel`]: cancelling an order: a plan over the order as recorded, written like a stage's.
//! - [`link`]: the desk's own broker connection, reopened when it drops.
//! - [`api`]: the same over HTTP (`fulfilment serve`, also started by `run`).
//! - [`extract`]: the API's extractors, which refuse what axum cannot read as JSON errors.

pub mod api;
pub mod cancel;
pub mod close;
pub mod desk;
pub mod extract;
pub mod link;
pub mod people;

pub use desk::{Resolution, ReviewDesk, ReviewError};
pub use people::{People, Person};
