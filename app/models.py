"""Imports every ORM model so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.auth.models import ApiKey
from app.error_group.models import ErrorGroup
from app.job.models import Job, Task

__all__ = ["ApiKey", "ErrorGroup", "Job", "Task"]
