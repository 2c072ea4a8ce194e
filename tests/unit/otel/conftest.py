"""The telemetry tests' fixtures (tests/support/otel_env.py)."""

from tests.support.otel_env import restore_root_logger, tel_env, telemetry_enabled

__all__ = ["restore_root_logger", "tel_env", "telemetry_enabled"]
