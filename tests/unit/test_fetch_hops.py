"""Redirect decisions and the result of a final response, without the network."""

from __future__ import annotations

import httpx

from app.fetch.client import FetchResult, next_hop, page
from app.fetch.outcome import Outcome

URL = httpx.URL("http://site.test/a")


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_a_redirect_leads_to_the_joined_url() -> None:
    assert next_hop(URL, _response(302, location="/b?x=1"), [], 5) == httpx.URL(
        "http://site.test/b?x=1"
    )


def test_no_location_or_no_redirect_status_is_no_hop() -> None:
    assert next_hop(URL, _response(302), [], 5) is None
    assert next_hop(URL, _response(200, location="/b"), [], 5) is None


def test_redirects_that_may_not_be_followed_end_the_fetch() -> None:
    non_http = next_hop(URL, _response(301, location="ftp://x/"), [], 5)
    assert isinstance(non_http, FetchResult)
    assert (non_http.outcome, non_http.verdict.retryable) == (Outcome.HTTP_ERROR, False)
    assert non_http.verdict.reason == "redirect to a non-HTTP URL"
    too_many = next_hop(URL, _response(307, location="/c"), ["u1", "u2"], 2)
    assert isinstance(too_many, FetchResult) and too_many.verdict.reason == "too many redirects"
    assert too_many.redirects == ["u1", "u2"]


def test_a_page_is_classified_with_its_retry_after() -> None:
    result = page(URL, _response(429, **{"retry-after": "7"}), b"slow", False, ["r"], 100)
    assert result.outcome == Outcome.RATE_LIMITED and result.retry_after_s == 7.0
    assert (result.final_url, result.body, result.redirects) == (str(URL), b"slow", ["r"])


def test_a_body_over_the_cap_is_an_error_without_the_body() -> None:
    result = page(URL, _response(200), b"", True, [], 100)
    assert result.outcome == Outcome.HTTP_ERROR and not result.verdict.retryable
    assert result.verdict.reason == "response larger than 100 bytes" and result.body == b""
