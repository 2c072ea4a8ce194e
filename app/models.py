"""Imports every ORM model so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.auth.models import ApiKey
from app.error_group.models import ErrorGroup
from app.job.models import Job, Task
from app.proxy.models import Proxy, ProxyPoolConfig
from app.webhook.models import WebhookAttempt, WebhookDelivery, WebhookEndpointDisabled

__all__ = [
    "ApiKey",
    "ErrorGroup",
    "Job",
    "Proxy",
    "ProxyPoolConfig",
    "Task",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpointDisabled",
]
