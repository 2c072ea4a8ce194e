"""Security building blocks: encryption of secrets at rest, SSRF policy and pinned transport."""
