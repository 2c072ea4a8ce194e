"""Database access: the async engine, sessions and migrations."""

from app.db.base import Base, UTCDateTime, utcnow
from app.db.engine import Database

__all__ = ["Base", "Database", "UTCDateTime", "utcnow"]
