"""Live alert drills (docs/monitoring/drills.md): ``python -m tests.drill``."""
