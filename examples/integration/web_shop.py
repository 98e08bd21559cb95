"""A web shop: publishes an order, and later the customer's acceptance."""

import sys

from fulfilment_events import connect, now, own_queue, publish

ROUTING_KEYS = ["order.verified", "order.handed_over", "order.cancelled", "review.case_opened"]


def follow(channel):
    """The shop's own queue, for what became of its orders."""
    return own_queue(channel, "shop", ROUTING_KEYS)


def place_order(channel, order_id):
    order = {
        "order_id": order_id,
        "customer_id": "CUST-042",
        "channel": "web",
        "currency": "GBP",
        "placed_at": now(),
        "lines": [{"sku": "MUG-BLUE", "quantity": 2, "unit_price_minor": 1250}],
        "total_minor": 2500,
    }
    return publish(channel, "order.placed", {"order_id": order_id, "order": order}, "shop/web")


def customer_accepts(channel, order_id):
    return publish(channel, "customer.confirmation",
                   {"order_id": order_id, "outcome": "accepted"}, "shop/web")


if __name__ == "__main__":
    connection, channel = connect()
    print("published order.placed", place_order(channel, sys.argv[1]))
    connection.close()
