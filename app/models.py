"""Imports every ORM model so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.auth.models import ApiKey
from app.job.models import Job, Task
from app.proxy.models import Proxy, ProxyPoolConfig
from app.webhook.models import WebhookAttempt, WebhookDelivery, WebhookEndpointDisabled

__all__ = [
    "ApiKey",
    "Job",
    "Proxy",
    "ProxyPoolConfig",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpointDisabled",
]
