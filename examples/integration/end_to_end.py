"""Every integration at once, as the test suite runs it: the warehouse and finance declare their
queues, the web shop and the contact centre place orders, the warehouse sees the web order handed
over, the customer accepts it, and finance sees its revenue."""

import sys

import contact_centre
import finance
import warehouse
import web_shop
from fulfilment_events import connect, wait_for


def main(prefix):
    connection, channel = connect()
    warehouse_queue = warehouse.follow(channel)
    finance_queue = finance.follow(channel)
    web_order, phone_order = f"{prefix}-WEB", f"{prefix}-PHONE"
    web_shop.place_order(channel, web_order)
    contact_centre.phone_order(channel, phone_order)

    handed_over = wait_for(channel, warehouse_queue, web_order, "fulfilment.order.handed_over.v1")
    assert handed_over["data"]["order_id"] == web_order
    web_shop.customer_accepts(channel, web_order)

    revenue = wait_for(channel, finance_queue, web_order, "fulfilment.revenue.recognised.v1")
    assert revenue["data"]["amount_minor"] == 2500, revenue
    assert revenue["data"]["currency"] == "GBP"
    print("ok:", web_order, "handed over and recognised", revenue["data"]["amount_minor"])
    connection.close()


if __name__ == "__main__":
    main(sys.argv[1])
