//! The states an order moves through, and which moves are allowed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in the pipeline. The order of the variants is the order of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Received, not yet checked.
    Placed,
    /// Checked against the internal records.
    Verified,
    /// Stock allocated and preparation checks done.
    Prepared,
    /// Handover documents produced.
    DocumentsGenerated,
    /// Handed over to the carrier or delivered as a service.
    HandedOver,
    /// The customer accepted the order (explicitly or deemed).
    Confirmed,
    /// Revenue recognised: nothing left to do.
    Completed,
    /// Cancelled by a person resolving a review case; what was done has been compensated.
    /// Last in order, so every stage treats later events for the order as already done.
    Cancelled,
    /// Closed by a person: the review case that held the order was resolved outside the
    /// pipeline, which does no more for it (nothing is compensated; cancel does that). After
    /// `cancelled`, so stages treat later events as already done, and an order can still be
    /// cancelled from here.
    Closed,
}

impl OrderState {
    /// Every state, in pipeline order.
    pub const ALL: [OrderState; 9] = [
        OrderState::Placed,
        OrderState::Verified,
        OrderState::Prepared,
        OrderState::DocumentsGenerated,
        OrderState::HandedOver,
        OrderState::Confirmed,
        OrderState::Completed,
        OrderState::Cancelled,
        OrderState::Closed,
    ];

    /// The state's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Verified => "verified",
            OrderState::Prepared => "prepared",
            OrderState::DocumentsGenerated => "documents_generated",
            OrderState::HandedOver => "handed_over",
            OrderState::Confirmed => "confirmed",
            OrderState::Completed => "completed",
            OrderState::Cancelled => "cancelled",
            OrderState::Closed => "closed",
        }
    }

    /// Whether an amendment may still change an order in this state: only before handover.
    pub fn can_amend(self) -> bool {
        self < OrderState::HandedOver
    }

    /// Whether the pipeline has finished with the order: completed, or ended by a person.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Completed | OrderState::Cancelled | OrderState::Closed
        )
    }

    /// Whether a person ended the order (cancelled or closed): stages do no more for it.
    pub fn is_ended(self) -> bool {
        matches!(self, OrderState::Cancelled | OrderState::Closed)
    }

    /// Whether an order may move from `self` to `to`: one step forward along the pipeline, to
    /// `cancelled` from any state but `cancelled`, or to `closed` from any state not final.
    pub fn can_move_to(self, to: OrderState) -> bool {
        match to {
            OrderState::Cancelled => return self != OrderState::Cancelled,
            OrderState::Closed => return !self.is_final(),
            _ => {}
        }
        let (from, to) = (self as usize, to as usize);
        to == from + 1 && to < OrderState::Cancelled as usize
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored state name that this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown order state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for OrderState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::OrderState::*;
    use super::*;

    #[test]
    fn only_single_forward_steps_are_allowed() {
        assert!(Placed.can_move_to(Verified));
        assert!(Confirmed.can_move_to(Completed));
        assert!(!Placed.can_move_to(Prepared));
        assert!(!Prepared.can_move_to(Verified));
        assert!(!Completed.can_move_to(Completed));
        assert!(Prepared.can_move_to(Cancelled) && Completed.can_move_to(Cancelled));
        assert!(!Cancelled.can_move_to(Cancelled));
        assert!(Placed.can_move_to(Closed) && HandedOver.can_move_to(Closed));
        assert!(!Completed.can_move_to(Closed) && !Cancelled.can_move_to(Closed));
        assert!(Closed.can_move_to(Cancelled) && !Closed.can_move_to(Closed));
        assert!(!Cancelled.can_move_to(Closed));
    }

    #[test]
    fn amendments_stop_at_handover() {
        assert!(Placed.can_amend() && Prepared.can_amend() && DocumentsGenerated.can_amend());
        assert!(!HandedOver.can_amend() && !Completed.can_amend());
    }

    #[test]
    fn names_round_trip() {
        for state in OrderState::ALL {
            assert_eq!(state.as_str().parse::<OrderState>().unwrap(), state);
        }
    }
}
