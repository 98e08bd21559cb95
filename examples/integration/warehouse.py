"""A warehouse system: follows what to pick (goods.prepared), what no longer to pick
(goods.released, when an order is amended or cancelled) and what was handed over."""

import sys

from fulfilment_events import connect, own_queue, wait_for

ROUTING_KEYS = ["goods.prepared", "goods.released", "order.handed_over", "order.cancelled"]


def follow(channel):
    return own_queue(channel, "warehouse", ROUTING_KEYS)


if __name__ == "__main__":
    connection, channel = connect()
    queue = follow(channel)
    event = wait_for(channel, queue, sys.argv[1], "fulfilment.order.handed_over.v1")
    print("handed over:", event["data"]["carrier"], event["data"]["tracking_reference"])
    connection.close()
