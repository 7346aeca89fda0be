"""Registry calls under our deadlines: an unreachable registry is a 503 in seconds, not minutes;
one warning per outage and one line when it ends; anyone else's MLflow calls are left alone."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from mlserver_sigaware.errors import RegistryUnavailable
from mlserver_sigaware.model import registry_http
from mlserver_sigaware.model.location import parse_registry_uri
from mlserver_sigaware.model.registry import RegistryClient
from mlserver_sigaware.model.registry_health import RegistryHealth
from mlserver_sigaware.settings import SigawareSettings


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again: connections are refused


def test_unreachable_registry_is_503_within_the_budget_not_mlflows_minutes():
    cfg = SigawareSettings(tracking_uri=dead_url(), registry_retries=2, registry_backoff_seconds=0.1,
                           registry_timeout_seconds=1)
    client = RegistryClient(cfg, None)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as info:
        client.resolve(parse_registry_uri("models:/m@champion"))
    took = time.monotonic() - started
    # MLflow's defaults (7 retries, back-off factor 2) take minutes; ours: 3 attempts, 0.1 + 0.2 s apart.
    assert took < 3
    assert info.value.status_code == 503
    assert "the model registry is unreachable" in str(info.value) and "gave up after 3 attempts" in str(info.value)
    assert "Connection refused" in str(info.value)


def test_a_listing_during_an_outage_fails_fast_too():
    client = RegistryClient(SigawareSettings(tracking_uri=dead_url(), registry_backoff_seconds=0.05), None)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        client.list_versions("m")
    assert time.monotonic() - started < 3


def test_without_a_policy_mlflows_call_is_untouched(monkeypatch):
    """Someone else's MLflow call (no policy set) reaches MLflow's function with its own arguments."""
    seen = []

    class Answer:
        status_code = 200

    def original(host_creds, endpoint, method, **kwargs):
        seen.append(kwargs)
        return Answer()

    wrapped = registry_http._wrap_http_request(original)
    assert isinstance(wrapped("creds", "/x", "GET", timeout=None), Answer)
    assert seen == [{"timeout": None}]
    with registry_http.policy(timeout=2, retries=0, backoff=0):
        wrapped("creds", "/x", "GET")
    assert seen[1] == {"max_retries": 0, "timeout": 2, "raise_on_status": False}


def test_retryable_answers_are_retried_then_returned_and_marked(monkeypatch):
    class Response:
        def __init__(self, code):
            self.status_code = code

        def close(self):
            pass

    codes = iter([503, 503, 200])
    wrapped = registry_http._wrap_http_request(lambda *a, **k: Response(next(codes)))
    with registry_http.policy(timeout=1, retries=2, backoff=0) as policy:
        assert wrapped("c", "/x", "GET").status_code == 200
    assert policy.failure is None and policy.attempts == 3
    codes = iter([502, 502])
    with registry_http.policy(timeout=1, retries=1, backoff=0) as policy:
        assert wrapped(type("C", (), {"host": "http://u:secret@reg"})(), "/x", "GET").status_code == 502
    assert policy.failure == "http://reg: HTTP 502"  # credentials never reach logs or metrics


def test_one_warning_per_outage_and_one_line_when_it_ends(caplog):
    health = RegistryHealth("http://user:token@registry:5000")
    with caplog.at_level(logging.INFO, logger="mlserver.sigaware"):
        for _ in range(5):
            health.failed("connection refused")
        health.succeeded()
        health.succeeded()
        health.failed("timed out")
    lines = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in line for line in lines) == 2  # two outages
    assert sum("reachable again" in line for line in lines) == 1
    assert all("token" not in line for line in lines)
    from prometheus_client import REGISTRY

    labels = {"registry": "http://registry:5000"}
    assert REGISTRY.get_sample_value("sigaware_registry_outages_total", labels) == 2
    assert REGISTRY.get_sample_value("sigaware_registry_unavailable_total", labels) == 6
    assert REGISTRY.get_sample_value("sigaware_registry_up", labels) == 0


def test_a_dropped_kept_alive_connection_is_retried_at_once_without_counting():
    """A server closes idle keep-alive connections (uvicorn: after 5 s): reusing one is not an outage."""
    import http.client

    import requests
    from urllib3.exceptions import ProtocolError

    class Response:
        status_code = 200

    dropped = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", http.client.RemoteDisconnected("Remote end closed connection without response"))
    )
    outcomes = iter([dropped, Response()])

    def original(*args, **kwargs):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    wrapped = registry_http._wrap_http_request(original)
    with registry_http.policy(timeout=1, retries=0, backoff=5) as policy:
        started = time.monotonic()
        assert wrapped("c", "/x", "GET").status_code == 200
    assert time.monotonic() - started < 1 and policy.failure is None
    outcomes = iter([dropped, dropped])
    with registry_http.policy(timeout=1, retries=0, backoff=0) as policy:
        with pytest.raises(requests.exceptions.ConnectionError):
            wrapped(type("C", (), {"host": "http://reg"})(), "/x", "GET")
    assert policy.failure == "http://reg: connection dropped (Remote end closed connection)"
