"""Optional Sentry error reports, scrubbed like every other signal (docs/security.md).

Off unless the application calls :func:`init_sentry` (Trawl does when ``SENTRY_DSN`` is set)
and ``sentry-sdk`` is installed (``pip install 'trawl[sentry]'``).
Local variables are never sent (``include_local_variables=False``: the worker's frames hold
decrypted proxy URLs and webhook signing secrets), no request bodies or PII, and every event
and breadcrumb passes :func:`scrub_event` before it leaves the process. A scrubber that fails
drops the event rather than send it unscrubbed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from otel.redact import MASK, is_db_error_type, is_sensitive_key, redact_db_message, redact_text

__all__ = ["close_sentry", "init_sentry", "scrub_breadcrumb", "scrub_event"]

log = logging.getLogger("otel")

# Event keys that hold frame-local or request data we never send, whatever they contain.
_DROPPED_KEYS = frozenset({"vars", "data", "cookies", "env"})


def _scrub(value: Any, key: str = "") -> Any:
    if key and is_sensitive_key(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _scrub(v, str(k)) for k, v in value.items() if str(k) not in _DROPPED_KEYS}
    if isinstance(value, list | tuple):
        return [_scrub(v, key) for v in value]
    return value


def _scrub_exceptions(event: dict[str, Any]) -> None:
    values = (event.get("exception") or {}).get("values") or []
    for exc in values:
        if isinstance(exc, dict) and is_db_error_type(
            f"{exc.get('module') or ''}.{exc.get('type') or ''}".lstrip(".")
        ):
            exc["value"] = redact_db_message(str(exc.get("value") or ""))


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``before_send``: the event with frame variables and request data removed and secrets
    masked in every string (exception values, messages, breadcrumbs, tags, contexts)."""
    try:
        clean: dict[str, Any] = _scrub(event)
        _scrub_exceptions(clean)
        return clean
    except Exception:
        log.warning("Sentry event scrubbing failed; event dropped")
        return None


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> Any:
    """``before_breadcrumb``: the same rules as events."""
    return scrub_event(crumb, hint)


def init_sentry(dsn: str, environment: str, release: str, in_app: Sequence[str]) -> Any:
    """Initialise ``sentry_sdk``; returns the module, or ``None`` when it is not installed.
    ``in_app``: the application's top-level packages (frames Sentry marks as in-app)."""
    try:
        import sentry_sdk
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed; Sentry stays off")
        return None
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        default_integrations=False,  # no logging, request or threading integrations
        # no PII by default (send_default_pii defaults to off; newer SDKs name it
        # data_collection and deprecate setting it)
        include_local_variables=False,
        max_request_body_size="never",
        # typed with sentry's private Event TypedDict; ours take any event mapping
        before_send=cast(Any, scrub_event),
        before_breadcrumb=cast(Any, scrub_breadcrumb),
        in_app_include=list(in_app),
    )
    return sentry_sdk


def close_sentry() -> None:
    """Flush and stop the Sentry client, if one was initialised. Never raises."""
    try:
        import sentry_sdk

        client = sentry_sdk.get_client()
        if client.is_active():
            client.close(timeout=2.0)
    except Exception:  # noqa: S110 - optional integration
        pass
