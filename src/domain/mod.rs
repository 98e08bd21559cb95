//! Domain types: orders, their states and the events the pipeline exchanges.
//!
//! Nothing here does I/O. Types parse their input on construction (an `OrderId` that exists is a
//! valid order id), so the rest of the crate never re-checks them.

pub mod catalogue;
pub mod documents;
pub mod events;
pub mod money;
pub mod order;
pub mod state;
pub mod text;

pub use events::{EventPayload, EventType};
pub use order::{Currency, Order, OrderId, OrderLine};
pub use state::OrderState;
