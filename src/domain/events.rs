//! The events the pipeline consumes and emits: one payload type per event type.
//!
//! Each event type has a routing key (`order.placed`) used on the exchange and a versioned
//! CloudEvents type (`fulfilment.order.placed.v1`) carried in the envelope.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::catalogue::{OwnershipPasses, RecognitionPoint, Relation};
use super::order::{Currency, Order, OrderId};
use super::text::{self, TextError};

/// Every event type the pipeline knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A new order from a front end or contact-centre tool.
    OrderPlaced,
    /// A changed order with a higher version.
    OrderAmended,
    /// The order matches the internal records.
    OrderVerified,
    /// Goods allocated and prepared (or a service slot booked).
    GoodsPrepared,
    /// Handover documents produced.
    DocumentsGenerated,
    /// Handed over: the dispatch event warehouse systems follow.
    OrderHandedOver,
    /// What the customer said about the order.
    CustomerConfirmation,
    /// The customer accepted the order.
    OrderCustomerConfirmed,
    /// The customer received the order.
    OrderDelivered,
    /// The window for the customer's answer has passed (a timer).
    AcceptanceDue,
    /// Products a satisfied customer may want next.
    SalesOpportunity,
    /// A payment was captured against the order.
    PaymentCaptured,
    /// An instalment of a service's revenue is due (a timer).
    InstalmentDue,
    /// Revenue recognised for the order.
    RevenueRecognised,
    /// The order was cancelled and what was done compensated.
    OrderCancelled,
    /// A case opened on the human-review queue.
    ReviewCaseOpened,
    /// Revenue recognised for an order taken back (amendment, cancellation).
    RevenueReversed,
    /// A payment booked in the ledger.
    PaymentRecorded,
    /// Stock allocated to a version of an order returned: its pick list is void.
    GoodsReleased,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 19] = [
        EventType::OrderPlaced,
        EventType::OrderAmended,
        EventType::OrderVerified,
        EventType::GoodsPrepared,
        EventType::DocumentsGenerated,
        EventType::OrderHandedOver,
        EventType::CustomerConfirmation,
        EventType::OrderCustomerConfirmed,
        EventType::OrderDelivered,
        EventType::AcceptanceDue,
        EventType::SalesOpportunity,
        EventType::PaymentCaptured,
        EventType::InstalmentDue,
        EventType::RevenueRecognised,
        EventType::OrderCancelled,
        EventType::ReviewCaseOpened,
        EventType::RevenueReversed,
        EventType::PaymentRecorded,
        EventType::GoodsReleased,
    ];

    /// The routing key the event is published with.
    pub fn routing_key(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "order.placed",
            EventType::OrderAmended => "order.amended",
            EventType::OrderVerified => "order.verified",
            EventType::GoodsPrepared => "goods.prepared",
            EventType::DocumentsGenerated => "documents.generated",
            EventType::OrderHandedOver => "order.handed_over",
            EventType::CustomerConfirmation => "customer.confirmation",
            EventType::OrderCustomerConfirmed => "order.customer_confirmed",
            EventType::OrderDelivered => "order.delivered",
            EventType::AcceptanceDue => "order.acceptance_due",
            EventType::SalesOpportunity => "sales.opportunity",
            EventType::PaymentCaptured => "payment.captured",
            EventType::InstalmentDue => "revenue.instalment_due",
            EventType::RevenueRecognised => "revenue.recognised",
            EventType::OrderCancelled => "order.cancelled",
            EventType::ReviewCaseOpened => "review.case_opened",
            EventType::RevenueReversed => "revenue.reversed",
            EventType::PaymentRecorded => "revenue.payment_recorded",
            EventType::GoodsReleased => "goods.released",
        }
    }

    /// The CloudEvents `type` attribute: `fulfilment.<routing key>.v1`.
    pub fn cloudevents_type(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "fulfilment.order.placed.v1",
            EventType::OrderAmended => "fulfilment.order.amended.v1",
            EventType::OrderVerified => "fulfilment.order.verified.v1",
            EventType::GoodsPrepared => "fulfilment.goods.prepared.v1",
            EventType::DocumentsGenerated => "fulfilment.documents.generated.v1",
            EventType::OrderHandedOver => "fulfilment.order.handed_over.v1",
            EventType::CustomerConfirmation => "fulfilment.customer.confirmation.v1",
            EventType::OrderCustomerConfirmed => "fulfilment.order.customer_confirmed.v1",
            EventType::OrderDelivered => "fulfilment.order.delivered.v1",
            EventType::AcceptanceDue => "fulfilment.order.acceptance_due.v1",
            EventType::SalesOpportunity => "fulfilment.sales.opportunity.v1",
            EventType::PaymentCaptured => "fulfilment.payment.captured.v1",
            EventType::InstalmentDue => "fulfilment.revenue.instalment_due.v1",
            EventType::RevenueRecognised => "fulfilment.revenue.recognised.v1",
            EventType::OrderCancelled => "fulfilment.order.cancelled.v1",
            EventType::ReviewCaseOpened => "fulfilment.review.case_opened.v1",
            EventType::RevenueReversed => "fulfilment.revenue.reversed.v1",
            EventType::PaymentRecorded => "fulfilment.revenue.payment_recorded.v1",
            EventType::GoodsReleased => "fulfilment.goods.released.v1",
        }
    }

    /// Whether outside systems publish this event (orders, amendments, customers' answers,
    /// payments). Every other event is the pipeline's own: a stage trusts one only if the
    /// pipeline's outbox holds it, byte for byte.
    pub fn from_outside(self) -> bool {
        matches!(
            self,
            EventType::OrderPlaced
                | EventType::OrderAmended
                | EventType::CustomerConfirmation
                | EventType::PaymentCaptured
        )
    }

    /// Finds the event type for a CloudEvents `type` attribute.
    pub fn from_cloudevents_type(ce_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.cloudevents_type() == ce_type)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cloudevents_type())
    }
}

/// A typed event payload: the `data` of a CloudEvent.
pub trait EventPayload: Serialize + DeserializeOwned {
    /// The event type this payload belongs to.
    const TYPE: EventType;
    /// The order the event is about; it becomes the envelope's `subject`.
    fn order_id(&self) -> &OrderId;
}

macro_rules! payload {
    ($ty:ty, $event:expr) => {
        impl EventPayload for $ty {
            const TYPE: EventType = $event;
            fn order_id(&self) -> &OrderId {
                &self.order_id
            }
        }
    };
}

/// `order.placed`: a new order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderPlaced {
    /// Same as `order.order_id`, repeated for consumers that read only the top level.
    pub order_id: OrderId,
    /// The order.
    pub order: Order,
}
payload!(OrderPlaced, EventType::OrderPlaced);

impl OrderPlaced {
    /// Wraps an order.
    pub fn new(order: Order) -> Self {
        Self {
            order_id: order.order_id.clone(),
            order,
        }
    }
}

/// `order.amended`: the whole changed order, with a higher version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderAmended {
    /// The order being changed.
    pub order_id: OrderId,
    /// The changed order.
    pub order: Order,
}
payload!(OrderAmended, EventType::OrderAmended);

impl OrderAmended {
    /// Wraps a changed order.
    pub fn new(order: Order) -> Self {
        Self {
            order_id: order.order_id.clone(),
            order,
        }
    }
}

/// `order.verified`: the order matches the internal records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderVerified {
    /// The order.
    pub order_id: OrderId,
    /// The version that was verified.
    pub version: u32,
    /// The order's total in minor units.
    pub total_minor: i64,
    /// The order's currency.
    pub currency: Currency,
}
payload!(OrderVerified, EventType::OrderVerified);

/// One product and quantity to pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PickLine {
    /// The product.
    pub sku: String,
    /// How many units.
    pub quantity: u32,
}

/// A service booked into a delivery slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceSlot {
    /// The service.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// When it will be delivered (UTC).
    pub scheduled_for: DateTime<Utc>,
}

/// A preparation check done for a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreparationCheck {
    /// The product.
    pub sku: String,
    /// The check, such as `inspected` or `packaged`.
    pub check: String,
}

/// `goods.prepared`: stock allocated and checks done; the pick list for the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GoodsPrepared {
    /// The order.
    pub order_id: OrderId,
    /// The order version prepared.
    #[serde(default = "v1")]
    pub version: u32,
    /// Goods to pick.
    pub pick_list: Vec<PickLine>,
    /// Services booked.
    #[serde(default)]
    pub service_slots: Vec<ServiceSlot>,
    /// The preparation checks recorded.
    #[serde(default)]
    pub checks: Vec<PreparationCheck>,
    /// The version of the order whose pick list this one replaces (announced void by
    /// `goods.released` when the order was amended), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_version: Option<u32>,
}

fn v1() -> u32 {
    1
}
payload!(GoodsPrepared, EventType::GoodsPrepared);

/// A document produced for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentRef {
    /// What kind of document (`delivery_note`, `packing_list`, `invoice`, ...).
    pub kind: String,
    /// Its number.
    pub number: String,
    /// SHA-256 of its PDF, hex.
    #[serde(default)]
    pub sha256: String,
}

/// `documents.generated`: the handover documents exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentsGenerated {
    /// The order.
    pub order_id: OrderId,
    /// The order version the documents are for.
    #[serde(default = "v1")]
    pub version: u32,
    /// The documents.
    pub documents: Vec<DocumentRef>,
}
payload!(DocumentsGenerated, EventType::DocumentsGenerated);

/// `order.handed_over`: the dispatch event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderHandedOver {
    /// The order.
    pub order_id: OrderId,
    /// The order version handed over.
    #[serde(default = "v1")]
    pub version: u32,
    /// Who carries it (goods).
    pub carrier: String,
    /// The carrier's tracking reference (goods).
    pub tracking_reference: String,
    /// When it was handed over (UTC).
    pub handed_over_at: DateTime<Utc>,
    /// The delivery terms' code.
    #[serde(default)]
    pub delivery_terms: String,
    /// When ownership and risk pass under those terms.
    #[serde(default = "on_dispatch")]
    pub ownership_passes: OwnershipPasses,
    /// When they passed, if they have (on dispatch: now; on delivery: later).
    #[serde(default)]
    pub ownership_passed_at: Option<DateTime<Utc>>,
    /// Services delivered with this handover (their delivery records).
    #[serde(default)]
    pub services_delivered: Vec<ServiceSlot>,
}

fn on_dispatch() -> OwnershipPasses {
    OwnershipPasses::OnDispatch
}
payload!(OrderHandedOver, EventType::OrderHandedOver);

/// What the customer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationOutcome {
    /// The customer accepts the order.
    Accepted,
    /// The customer confirms receipt.
    Delivered,
    /// The customer complains; a reason is given.
    Complaint,
    /// The customer has a question.
    Query,
}

impl ConfirmationOutcome {
    /// The outcome's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmationOutcome::Accepted => "accepted",
            ConfirmationOutcome::Delivered => "delivered",
            ConfirmationOutcome::Complaint => "complaint",
            ConfirmationOutcome::Query => "query",
        }
    }

    /// A complaint or a query: something customer service must answer before the order can be
    /// taken as accepted.
    pub fn is_concern(self) -> bool {
        matches!(
            self,
            ConfirmationOutcome::Complaint | ConfirmationOutcome::Query
        )
    }
}

/// `customer.confirmation`: the customer's answer about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CustomerConfirmation {
    /// The order.
    pub order_id: OrderId,
    /// What the customer said.
    pub outcome: ConfirmationOutcome,
    /// Why, for a complaint or query: at most 2000 characters, no control characters but line
    /// feed and tab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::text::free_text_schema")]
    pub reason: Option<String>,
}
payload!(CustomerConfirmation, EventType::CustomerConfirmation);

/// On what basis the customer is taken to have accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationBasis {
    /// The customer said so.
    Explicit,
    /// The acceptance window passed with no answer; accepted under the terms of sale.
    Deemed,
}

/// `order.customer_confirmed`: the customer accepted the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderCustomerConfirmed {
    /// The order.
    pub order_id: OrderId,
    /// Explicit or deemed.
    pub basis: ConfirmationBasis,
    /// When the acceptance took effect (UTC).
    pub confirmed_at: DateTime<Utc>,
}
payload!(OrderCustomerConfirmed, EventType::OrderCustomerConfirmed);

/// `order.delivered`: the customer confirmed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderDelivered {
    /// The order.
    pub order_id: OrderId,
    /// When it was delivered (UTC).
    pub delivered_at: DateTime<Utc>,
}
payload!(OrderDelivered, EventType::OrderDelivered);

/// `order.acceptance_due`: the acceptance window passed (published by the scheduler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcceptanceDue {
    /// The order.
    pub order_id: OrderId,
    /// When the window closed (UTC).
    pub due_at: DateTime<Utc>,
}
payload!(AcceptanceDue, EventType::AcceptanceDue);

/// A product suggested to a satisfied customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Suggestion {
    /// The suggested product.
    pub sku: String,
    /// Cross-sell or up-sell.
    pub relation: Relation,
    /// The product bought that it relates to.
    pub because_of: String,
}

/// `sales.opportunity`: products a satisfied customer has not bought yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SalesOpportunity {
    /// The order that satisfied the customer.
    pub order_id: OrderId,
    /// The customer's id (no other personal data).
    pub customer_id: String,
    /// What to offer.
    pub suggestions: Vec<Suggestion>,
}
payload!(SalesOpportunity, EventType::SalesOpportunity);

/// `payment.captured`: money received against an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentCaptured {
    /// The order.
    pub order_id: OrderId,
    /// The payment provider's reference, unique per payment.
    #[schemars(schema_with = "super::text::identifier_schema")]
    pub payment_reference: String,
    /// Amount captured, minor units.
    #[schemars(range(min = 1, max = 1_000_000_000_000_000_i64))]
    pub amount_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// When (UTC), between 1970 and 9999.
    pub captured_at: DateTime<Utc>,
}
payload!(PaymentCaptured, EventType::PaymentCaptured);

/// `revenue.instalment_due`: an instalment of a service's revenue is due (scheduler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstalmentDue {
    /// The order.
    pub order_id: OrderId,
    /// The order line, from 0.
    pub line_no: u32,
    /// The instalment, from 1.
    pub instalment: u32,
    /// When it fell due (UTC).
    pub due_at: DateTime<Utc>,
}
payload!(InstalmentDue, EventType::InstalmentDue);

/// One line's part of a recognition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecognisedLine {
    /// The order line, from 0.
    pub line_no: u32,
    /// The product.
    pub sku: String,
    /// 0 for a whole line, else the instalment number of a service over a period.
    pub instalment: u32,
    /// Net revenue recognised, minor units.
    pub amount_minor: i64,
    /// Tax on it, minor units (not revenue).
    pub tax_minor: i64,
    /// The line's recognition point: its product's policy, or for goods the point where the
    /// delivery terms pass ownership, whichever is later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recognition: Option<RecognitionPoint>,
}

/// `revenue.recognised`: revenue recognised for some lines of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevenueRecognised {
    /// The order.
    pub order_id: OrderId,
    /// The lines recognised.
    #[serde(default)]
    pub lines: Vec<RecognisedLine>,
    /// Net amount recognised, minor units.
    pub amount_minor: i64,
    /// Tax on it, minor units.
    #[serde(default)]
    pub tax_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// The milestone whose event evidenced the recognition (each line's own point is in
    /// `lines[].recognition`: acceptance also evidences receipt, for instance).
    #[serde(default = "on_acceptance")]
    pub basis: RecognitionPoint,
    /// When control passed to the customer (UTC).
    pub control_passed_at: DateTime<Utc>,
    /// Ids of the events that evidence the recognition point.
    pub evidence_event_ids: Vec<String>,
    /// The order version whose revenue this is.
    #[serde(default = "v1")]
    pub version: u32,
}

fn on_acceptance() -> RecognitionPoint {
    RecognitionPoint::OnAcceptance
}
payload!(RevenueRecognised, EventType::RevenueRecognised);

/// Why revenue or stock was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Undone {
    /// The order was amended: a new version replaces this one.
    Amended,
    /// The order was cancelled.
    Cancelled,
}

/// `revenue.reversed`: revenue recognised for a version of an order taken back, in full. With
/// `revenue.recognised` and `revenue.payment_recorded` it is every ledger movement of an
/// order: what finance hears adds up to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevenueReversed {
    /// The order.
    pub order_id: OrderId,
    /// The version whose revenue is reversed.
    pub version: u32,
    /// Why.
    pub reason: Undone,
    /// The lines (and instalments) reversed, with the amounts recognised for them.
    pub lines: Vec<RecognisedLine>,
    /// Net revenue taken back, minor units (the sum of the lines').
    pub amount_minor: i64,
    /// Tax taken back, minor units.
    pub tax_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// When (UTC).
    pub reversed_at: DateTime<Utc>,
}
payload!(RevenueReversed, EventType::RevenueReversed);

/// `revenue.payment_recorded`: a payment booked in the ledger (cash against what the customer
/// owes, any excess held as deferred revenue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRecorded {
    /// The order.
    pub order_id: OrderId,
    /// The order version when it was booked.
    pub version: u32,
    /// The payment provider's reference.
    pub payment_reference: String,
    /// Amount received, minor units.
    pub amount_minor: i64,
    /// Of which set against what the customer owed (receivable).
    pub against_receivable_minor: i64,
    /// Of which held as deferred revenue, for revenue not yet recognised.
    pub deferred_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// When it was captured (UTC).
    pub captured_at: DateTime<Utc>,
}
payload!(PaymentRecorded, EventType::PaymentRecorded);

/// `goods.released`: the stock allocated to a version of an order was returned; that version's
/// pick list is void. A later `goods.prepared` names it in `replaces_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GoodsReleased {
    /// The order.
    pub order_id: OrderId,
    /// The version whose pick list is void.
    pub version: u32,
    /// Why.
    pub reason: Undone,
    /// What is no longer to be picked (or goes back to stock if it was).
    pub released: Vec<PickLine>,
    /// When (UTC).
    pub released_at: DateTime<Utc>,
}
payload!(GoodsReleased, EventType::GoodsReleased);

/// `order.cancelled`: a person cancelled the order; stock was released, documents voided and any
/// recognised revenue reversed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: OrderId,
    /// The review case it was cancelled from.
    pub case_id: i64,
    /// Why, in the words of the person who cancelled it.
    pub reason: String,
    /// Units of stock returned.
    pub stock_released: i64,
    /// Documents voided.
    pub documents_voided: u64,
    /// Net revenue reversed, minor units.
    pub revenue_reversed_minor: i64,
    /// When (UTC).
    pub cancelled_at: DateTime<Utc>,
}
payload!(OrderCancelled, EventType::OrderCancelled);

/// `review.case_opened`: a stage could not finish; a person must resolve the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewCaseOpened {
    /// The case's id in the review records.
    pub case_id: i64,
    /// The order, when the failed message named one; otherwise `unknown`.
    pub order_id: OrderId,
    /// The stage that escalated.
    pub stage: String,
    /// A machine-readable reason, such as `invalid_payload`.
    pub reason: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// The role with the authority to resolve the case.
    pub required_role: String,
}
payload!(ReviewCaseOpened, EventType::ReviewCaseOpened);

/// Why an event's `data` is not a valid payload of its type. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The data does not have the payload's shape; `path` is where (`order.lines[0].quantity`).
    #[error("data.{path}: {message}")]
    Shape {
        /// Where in `data`.
        path: String,
        /// What serde said.
        message: String,
    },
    /// A value breaks its limits.
    #[error("data.{0}")]
    Limits(#[from] TextError),
    /// Two order ids in one payload differ.
    #[error("data.order_id {outer:?} differs from data.order.order_id {inner:?}")]
    OrderIdMismatch {
        /// The payload's `order_id`.
        outer: String,
        /// The order's own `order_id`.
        inner: String,
    },
}

macro_rules! payloads {
    ($($variant:ident),* $(,)?) => {
        /// Any event's payload, decoded according to its type.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Payload {
            $(
                #[doc = concat!("A `", stringify!($variant), "` payload.")]
                $variant($variant),
            )*
        }

        impl Payload {
            /// Decodes `data` as the payload of `event_type`, naming the field at fault when it
            /// does not fit, then checks the payload's limits.
            pub fn decode(event_type: EventType, data: &serde_json::Value) -> Result<Self, PayloadError> {
                let payload = match event_type {
                    $(EventType::$variant => Payload::$variant(shaped(data)?),)*
                };
                payload.check()?;
                Ok(payload)
            }

            /// The event type.
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Payload::$variant(_) => EventType::$variant,)*
                }
            }

            /// The order the event is about.
            pub fn order_id(&self) -> &OrderId {
                match self {
                    $(Payload::$variant(p) => &p.order_id,)*
                }
            }

            /// The payload as the `data` of an envelope.
            pub fn to_data(&self) -> serde_json::Value {
                match self {
                    $(Payload::$variant(p) => serde_json::to_value(p),)*
                }
                .expect("event payloads always serialise")
            }
        }

        $(
            impl From<$variant> for Payload {
                fn from(payload: $variant) -> Self {
                    Payload::$variant(payload)
                }
            }
        )*
    };
}

payloads!(
    OrderPlaced,
    OrderAmended,
    OrderVerified,
    GoodsPrepared,
    DocumentsGenerated,
    OrderHandedOver,
    CustomerConfirmation,
    OrderCustomerConfirmed,
    OrderDelivered,
    AcceptanceDue,
    SalesOpportunity,
    PaymentCaptured,
    InstalmentDue,
    RevenueRecognised,
    OrderCancelled,
    ReviewCaseOpened,
    RevenueReversed,
    PaymentRecorded,
    GoodsReleased,
);

/// `data` as `T`, or the path of the first field that does not fit.
fn shaped<T: DeserializeOwned>(data: &serde_json::Value) -> Result<T, PayloadError> {
    serde_path_to_error::deserialize(data).map_err(|error| {
        let path = error.path().to_string();
        PayloadError::Shape {
            path: if path == "." { String::new() } else { path },
            message: text::excerpt(&error.into_inner().to_string(), 300),
        }
    })
}

impl Payload {
    /// What the types alone do not say: text and amount limits of what outside systems send,
    /// and that an order's two ids agree.
    fn check(&self) -> Result<(), PayloadError> {
        match self {
            Payload::OrderPlaced(OrderPlaced { order_id, order })
            | Payload::OrderAmended(OrderAmended { order_id, order })
                if *order_id != order.order_id =>
            {
                Err(PayloadError::OrderIdMismatch {
                    outer: order_id.to_string(),
                    inner: order.order_id.to_string(),
                })
            }
            Payload::CustomerConfirmation(answer) => {
                if let Some(reason) = &answer.reason {
                    text::free_text("reason", reason)?;
                }
                Ok(())
            }
            Payload::PaymentCaptured(paid) => {
                text::identifier("payment_reference", &paid.payment_reference)?;
                text::within("amount_minor", paid.amount_minor, 1, text::MAX_AMOUNT_MINOR)?;
                text::timestamp("captured_at", paid.captured_at)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_keys_are_distinct() {
        let mut keys = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert_eq!(
                EventType::from_cloudevents_type(t.cloudevents_type()),
                Some(t)
            );
            assert!(keys.insert(t.routing_key()));
            assert_eq!(
                t.cloudevents_type(),
                format!("fulfilment.{}.v1", t.routing_key())
            );
        }
    }
}
