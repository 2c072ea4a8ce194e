"""Queue transport (taskiq + a Redis stream), retry timing, per-domain politeness and worker
liveness keys: the parts of the task queue that know nothing of jobs."""

from app.queue.backoff import backoff_delay, retry_delay
from app.queue.broker import (
    CONSUMER_GROUP,
    Publisher,
    StreamState,
    build_broker,
    count_workers,
    register_handler,
    stream_name,
    stream_state,
    worker_key,
)
from app.queue.politeness import Bookings, Grant, Politeness

__all__ = [
    "CONSUMER_GROUP",
    "Bookings",
    "Grant",
    "Politeness",
    "Publisher",
    "StreamState",
    "backoff_delay",
    "build_broker",
    "count_workers",
    "register_handler",
    "retry_delay",
    "stream_name",
    "stream_state",
    "worker_key",
]
