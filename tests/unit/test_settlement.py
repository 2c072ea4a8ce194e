"""How an attempt ends, computed without I/O (``processing.settlement``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.fetch.client import FetchResult
from app.fetch.outcome import Outcome, Verdict
from app.job.models import TaskStatus
from app.job.processing import Attempt, Settlement, settlement
from app.settings import Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = Settings(
    environment="test", backoff_base_s=1.0, backoff_cap_s=8.0, retry_after_cap_s=60.0
)


def _fetched(
    outcome: Outcome,
    retryable: bool,
    code: int,
    body: bytes = b"",
    retry_after_s: float | None = None,
) -> FetchResult:
    verdict = Verdict(outcome, retryable, f"HTTP {code}")
    return FetchResult(verdict, "http://s/", code, body=body, retry_after_s=retry_after_s)


def _settle(attempt: Attempt, number: int = 1, cancel: bool = False) -> Settlement:
    return settlement(
        attempt,
        number=number,
        max_attempts=3,
        cancel_requested=cancel,
        now=NOW,
        settings=SETTINGS,
    )


def test_a_success_is_final_with_its_data() -> None:
    fetched = _fetched(Outcome.SUCCESS, False, 200, body=b"<html/>")
    s = _settle(Attempt(fetched.verdict, fetched, {"title": "T"}))
    assert s.retry is False and s.status is TaskStatus.SUCCEEDED
    values = s.values
    assert values["data"] == {"title": "T"} and values["error"] is None
    assert values["finished_at"] == NOW and values["response_bytes"] == 7


def test_a_retryable_failure_with_attempts_left_is_queued_after_a_backoff() -> None:
    fetched = _fetched(Outcome.HTTP_ERROR, True, 503)
    s = _settle(Attempt(fetched.verdict, fetched), number=2)
    assert s.retry is True and s.status is TaskStatus.QUEUED
    values = s.values
    assert values["status"] is TaskStatus.QUEUED and values["worker_id"] is None
    assert NOW <= values["next_attempt_at"] <= NOW + timedelta(seconds=2)  # full jitter, 2nd
    assert values["error"] == {"outcome": "http_error", "message": "HTTP 503"}
    assert "finished_at" not in values


def test_retry_after_wins_over_the_backoff_up_to_its_cap() -> None:
    fetched = _fetched(Outcome.RATE_LIMITED, True, 429, retry_after_s=600.0)
    s = _settle(Attempt(fetched.verdict, fetched))
    assert s.values["next_attempt_at"] == NOW + timedelta(seconds=60)


def test_the_last_attempt_is_final_even_when_retryable() -> None:
    fetched = _fetched(Outcome.TIMEOUT, True, 0)
    s = _settle(Attempt(fetched.verdict, fetched), number=3)
    assert s.retry is False and s.status is TaskStatus.FAILED
    assert s.values["error"]["outcome"] == "timeout"


def test_a_cancel_requested_meanwhile_wins_over_the_fetch() -> None:
    fetched = _fetched(Outcome.SUCCESS, False, 200, body=b"x")
    s = _settle(Attempt(fetched.verdict, fetched, {"t": 1}), cancel=True)
    assert s.status is TaskStatus.CANCELLED and s.retry is False
    assert s.values["last_outcome"] == "cancelled"
