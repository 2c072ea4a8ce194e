"""Queue transport (taskiq + Redis streams), retry timing and per-domain politeness."""

from app.queue.backoff import backoff_delay, retry_delay
from app.queue.broker import Publisher, build_broker, register_handler, stream_name
from app.queue.politeness import Grant, Politeness

__all__ = [
    "Grant",
    "Politeness",
    "Publisher",
    "backoff_delay",
    "build_broker",
    "register_handler",
    "retry_delay",
    "stream_name",
]
