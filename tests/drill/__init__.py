"""Live alert drills (issue 12): real faults against the running service, timed end to end.

``python -m tests.drill`` (``make drill``): docs/monitoring/drills.md.
"""
