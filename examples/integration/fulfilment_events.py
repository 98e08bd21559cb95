"""Talking to the fulfilment pipeline from Python with pika: CloudEvents envelopes, publisher
confirms, and consumer queues of your own bound to the events exchange."""

import json
import os
import time
import uuid
from datetime import datetime, timezone

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
NAMESPACE = os.environ.get("FULFILMENT_NAMESPACE", "fulfilment")
EXCHANGE = f"{NAMESPACE}.events"


def connect():
    """A blocking connection and a channel with publisher confirms on."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    return connection, channel


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def publish(channel, routing_key, data, source):
    """Publish one event as a structured CloudEvent; returns its id once the broker confirmed it.
    Keep the id: publishing the same event again (after a lost confirm) has no second effect."""
    event_id = str(uuid.uuid4())
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": f"fulfilment.{routing_key}.v1",
        "subject": data["order_id"],
        "time": now(),
        "datacontenttype": "application/json",
        "data": data,
    }
    channel.basic_publish(
        exchange=EXCHANGE,
        routing_key=routing_key,
        body=json.dumps(envelope).encode(),
        properties=pika.BasicProperties(
            content_type="application/cloudevents+json",
            delivery_mode=2,
            message_id=event_id,
            type=envelope["type"],
            correlation_id=data["order_id"],
            timestamp=int(time.time()),
        ),
        mandatory=True,
    )
    return event_id


def own_queue(channel, name, routing_keys):
    """Declare your own durable queue and bind it to the routing keys you follow."""
    queue = f"{NAMESPACE}.{name}"
    channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    for key in routing_keys:
        channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=key)
    return queue


def wait_for(channel, queue, order_id, event_type, timeout_s=60):
    """Consume from `queue` until an event of `event_type` about `order_id` arrives. Every
    delivery is acknowledged after it is handled; duplicates are skipped by id."""
    seen = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        method, _properties, body = channel.basic_get(queue=queue, auto_ack=False)
        if method is None:
            time.sleep(0.1)
            continue
        event = json.loads(body)
        channel.basic_ack(method.delivery_tag)
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        if event["subject"] == order_id and event["type"] == event_type:
            return event
    raise TimeoutError(f"no {event_type} for {order_id} within {timeout_s}s")
