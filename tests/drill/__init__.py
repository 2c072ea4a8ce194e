"""Live alert drills (issue 12): real faults against the running service, timed end to end."""
