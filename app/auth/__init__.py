"""API keys: stored as SHA-256, presented as ``Authorization: Bearer``; the admin scope."""
