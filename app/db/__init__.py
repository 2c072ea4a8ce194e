"""Database access: the async engine, sessions and migrations."""

from app.db.base import Base, UTCDateTime, utcnow
from app.db.engine import Database
from app.db.errors import is_unavailable

__all__ = ["Base", "Database", "UTCDateTime", "is_unavailable", "utcnow"]
