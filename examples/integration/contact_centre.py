"""A contact-centre tool: an agent's phone order, with how the customer's identity was checked
(the method and result, never the answers)."""

import sys

from fulfilment_events import connect, now, own_queue, publish

ROUTING_KEYS = [
    "order.verified",
    "order.handed_over",
    "order.cancelled",
    "review.case_opened",
    "sales.opportunity",
]


def follow(channel):
    """The tool's own queue: what became of its orders, and suggestions for satisfied customers."""
    return own_queue(channel, "contact_centre", ROUTING_KEYS)


def phone_order(channel, order_id, agent_id="AG-7"):
    order = {
        "order_id": order_id,
        "customer_id": "CUST-107",
        "channel": "phone",
        "agent_id": agent_id,
        "identity_check": {"method": "security_questions", "result": "passed"},
        "currency": "GBP",
        "placed_at": now(),
        "lines": [{"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3600}],
    }
    return publish(channel, "order.placed", {"order_id": order_id, "order": order}, "contact-centre")


if __name__ == "__main__":
    connection, channel = connect()
    print("published order.placed", phone_order(channel, sys.argv[1]))
    connection.close()
