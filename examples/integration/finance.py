"""Finance tooling: follows revenue (`revenue.#`) and reconciles it to the minor unit."""

import sys

from fulfilment_events import connect, own_queue, wait_for


def follow(channel):
    return own_queue(channel, "finance", ["revenue.#"])


if __name__ == "__main__":
    connection, channel = connect()
    queue = follow(channel)
    event = wait_for(channel, queue, sys.argv[1], "fulfilment.revenue.recognised.v1")
    data = event["data"]
    print("recognised", data["amount_minor"], data["currency"], "basis", data["basis"])
    connection.close()
