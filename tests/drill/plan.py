"""Which scenarios run in which lane. Lanes run in parallel; a lane runs its scenarios one after
another, each fault removed (and its page resolved) before the next. Scenarios that would
interfere (two faults on one queue, one database) are in separate lanes or in sequence."""

from __future__ import annotations

LANES: dict[str, list[str]] = {
    "a": ["workers-stopped", "worker-killed", "telemetry-silent"],
    "b": ["webhook-receiver-down", "new-error-group", "api-blocked"],
    "c": ["proxies-banned", "targets-failing", "redis-down"],
    "d": ["postgres-down", "escalation"],
}

#: lanes whose demo pages live in a network namespace (index of its 10.231.<i>.0/24 link):
#: targets-failing makes that link slow and lossy
NETNS_LANES: dict[str, int] = {"c": 41}
