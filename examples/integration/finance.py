"""Finance tooling: follows every ledger movement (`revenue.#`) and keeps, per order, what it
has heard: revenue and tax recognised less reversed, and cash received. These add up to the
pipeline's ledger for the order at every moment."""

import sys
from collections import defaultdict

from fulfilment_events import connect, own_queue, wait_for

ROUTING_KEYS = ["revenue.#"]


def follow(channel):
    return own_queue(channel, "finance", ROUTING_KEYS)


class Books:
    """Running totals per order, from the events of `revenue.#`, each counted once by its id."""

    def __init__(self):
        self.seen = set()
        self.revenue = defaultdict(int)
        self.tax = defaultdict(int)
        self.cash = defaultdict(int)

    def book(self, event):
        if event["id"] in self.seen:
            return
        self.seen.add(event["id"])
        data, order = event["data"], event["subject"]
        kind = event["type"]
        if kind == "fulfilment.revenue.recognised.v1":
            self.revenue[order] += data["amount_minor"]
            self.tax[order] += data["tax_minor"]
        elif kind == "fulfilment.revenue.reversed.v1":
            self.revenue[order] -= data["amount_minor"]
            self.tax[order] -= data["tax_minor"]
        elif kind == "fulfilment.revenue.payment_recorded.v1":
            self.cash[order] += data["amount_minor"]


if __name__ == "__main__":
    connection, channel = connect()
    queue = follow(channel)
    event = wait_for(channel, queue, sys.argv[1], "fulfilment.revenue.recognised.v1")
    data = event["data"]
    print("recognised", data["amount_minor"], data["currency"], "basis", data["basis"])
    connection.close()
