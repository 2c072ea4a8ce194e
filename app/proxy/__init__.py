"""Proxy pools: configuration (SQL, credentials encrypted), rotation and health (Redis)."""
