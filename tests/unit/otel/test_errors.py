from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel
from otel.errors import GROUP_KEY_ATTR
from tests.support.otel_env import Env

IN_APP = ("tests",)


def _raise_value(msg: str) -> None:
    raise ValueError(msg)


def _other_function(msg: str) -> None:
    raise ValueError(msg)


def _line_variant(msg: str, variant: int) -> None:
    if variant == 0:
        raise ValueError(msg)
    x = 1
    x += 1
    raise ValueError(msg + str(x))


def _catch(fn: object, *args: object) -> BaseException:
    try:
        fn(*args)  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def test_same_path_different_messages_same_key() -> None:
    a = otel.fingerprint(_catch(_raise_value, "id=1"), IN_APP)
    b = otel.fingerprint(_catch(_raise_value, "id=2 other text"), IN_APP)
    assert a == b
    assert len(a) == 16 and int(a, 16) >= 0


def test_different_line_same_function_same_key() -> None:
    a = otel.fingerprint(_catch(_line_variant, "m", 0), IN_APP)
    b = otel.fingerprint(_catch(_line_variant, "m", 1), IN_APP)
    assert a == b


def test_different_function_different_key() -> None:
    a = otel.fingerprint(_catch(_raise_value, "m"), IN_APP)
    b = otel.fingerprint(_catch(_other_function, "m"), IN_APP)
    assert a != b


def test_different_type_different_key() -> None:
    def raise_key() -> None:
        raise KeyError("m")

    def raise_val() -> None:
        raise ValueError("m")

    assert otel.fingerprint(_catch(raise_key), IN_APP) != otel.fingerprint(
        _catch(raise_val), IN_APP
    )


def test_cause_root_type_included() -> None:
    def wrap(inner: type[Exception]) -> None:
        try:
            raise inner("x")
        except Exception as exc:
            raise RuntimeError("wrapped") from exc

    a = otel.fingerprint(_catch(wrap, KeyError), IN_APP)
    b = otel.fingerprint(_catch(wrap, OSError), IN_APP)
    c = otel.fingerprint(_catch(wrap, KeyError), IN_APP)
    assert a != b
    assert a == c


def test_non_app_frames_ignored_when_app_frames_exist() -> None:
    import json

    def parse(s: str) -> object:
        return json.loads(s)

    a = otel.fingerprint(_catch(parse, "{bad"), IN_APP)
    b = otel.fingerprint(_catch(parse, "[1,"), IN_APP)
    assert a == b  # different stdlib-internal paths, same in-app path and type


def test_falls_back_to_all_frames_without_app_frames() -> None:
    exc = _catch(_raise_value, "m")
    assert otel.fingerprint(exc, ("nothing_here",)) != otel.fingerprint(
        _catch(_other_function, "m"), ("nothing_here",)
    )


def test_unraised_exception() -> None:
    assert otel.fingerprint(ValueError("x")) == otel.fingerprint(ValueError("y"))


def test_record_exception_on_span(tel_env: Env) -> None:
    exc = _catch(_raise_value, "boom")
    with trace.get_tracer("t").start_as_current_span("op") as span:
        key = otel.record_exception(span, exc, in_app=IN_APP)
    tel_env.flush()
    (s,) = tel_env.spans.get_finished_spans()
    assert key == otel.fingerprint(exc, IN_APP)
    assert s.status.status_code is StatusCode.ERROR
    assert s.attributes is not None
    assert s.attributes["error.type"] == "ValueError"
    assert s.attributes[GROUP_KEY_ATTR] == key
    (event,) = s.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes[GROUP_KEY_ATTR] == key
    assert "Traceback" in str(event.attributes["exception.stacktrace"])


def test_record_exception_never_raises() -> None:
    class Broken:
        def is_recording(self) -> bool:
            raise RuntimeError("bad span")

    assert otel.record_exception(Broken(), ValueError("x"), "k") is None  # type: ignore[arg-type]


def test_the_grouping_key_has_one_name_in_the_trawl_namespace() -> None:
    assert GROUP_KEY_ATTR == "trawl.error.group"


PLANTED = "PLANTED-7f3a9c"


def test_record_exception_redacts_message_and_stack_trace() -> None:
    # a bare provider: the redaction is record_exception's own, not the exporter's
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exc = _catch(_raise_value, f"fetch failed: http://bob:{PLANTED}@proxy:3128 api_key={PLANTED}")
    with provider.get_tracer("t").start_as_current_span("op") as span:
        otel.record_exception(span, exc, in_app=IN_APP)
    (s,) = exporter.get_finished_spans()
    (event,) = s.events
    attrs = dict(event.attributes or {})
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "fetch failed: http://***@proxy:3128 api_key=***"
    assert "Traceback" in str(attrs["exception.stacktrace"])
    assert PLANTED not in repr(attrs) and PLANTED not in repr(s.to_json())


def test_spans_are_scrubbed_before_export(tel_env: Env) -> None:
    """Exception events recorded by the SDK itself (an exception escaping a span), status
    descriptions set by instrumentations and URL attributes are redacted at export."""
    tracer = trace.get_tracer("t")
    try:
        with tracer.start_as_current_span(
            "escaping", attributes={"url.full": f"https://h/p?token={PLANTED}&page=2"}
        ):
            _raise_value(f"password={PLANTED}")
    except ValueError:
        pass
    with tracer.start_as_current_span(
        "db", attributes={"db.system.name": "postgresql", "http.request.header.authorization": "x"}
    ) as span:
        span.set_status(
            trace.Status(
                StatusCode.ERROR, f"invalid input for query argument $1: '{PLANTED}' (expected int)"
            )
        )
    tel_env.flush()
    spans = {s.name: s for s in tel_env.spans.get_finished_spans()}
    escaping, db = spans["escaping"], spans["db"]
    assert escaping.attributes is not None and db.attributes is not None
    assert escaping.attributes["url.full"] == "https://h/p?token=***&page=2"
    (event,) = escaping.events
    assert event.attributes is not None and event.attributes["exception.message"] == "password=***"
    assert db.status.description == "invalid input for query argument $1: '***' (expected int)"
    assert db.attributes["http.request.header.authorization"] == "***"
    for s in spans.values():
        assert PLANTED not in s.to_json()
