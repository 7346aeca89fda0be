"""Deadlines for our MLflow registry calls: a timeout and a retry budget of our own, per call.

MLflow's REST client reads its retry policy from process-wide environment variables
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` = 7, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` = 2,
``MLFLOW_HTTP_REQUEST_TIMEOUT`` = 120 s) on every call: an unreachable registry makes a call hang for
about four minutes. Changing those variables would change every MLflow client in the process (another
runtime's, a user's), and ``os.environ`` is not safe to flip per thread, so the policy travels in a
:class:`contextvars.ContextVar` instead:

* :func:`policy` sets a :class:`CallPolicy` for the duration of one of our registry operations;
* :func:`install` wraps MLflow's ``http_request`` (the one every registry, tracking and proxied-artifact
  call goes through) so that, *only while a policy is set*, each HTTP request gets our timeout and no
  MLflow retries, and is retried by us (connection errors, timeouts, 408/429/5xx) with our back-off;
  when the budget runs out on an unreachable endpoint, the policy records why (:attr:`CallPolicy.failure`)
  and MLflow's own exception propagates unchanged, so MLflow's code paths behave as they always do;
* MLflow downloads artifact files on a thread pool: :func:`install` makes that pool's tasks run in the
  submitter's context, so file downloads carry the policy too.

With no policy set (anyone else's MLflow call), the wrappers call MLflow's functions exactly as before.
Downloads straight from cloud storage (S3, GCS, Azure: not proxied by an MLflow server) use their SDK's
own retry settings.
"""

from __future__ import annotations

import contextvars
import functools
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

__all__ = ["CallPolicy", "current_policy", "install", "policy"]

_POLICY: contextvars.ContextVar[Optional["CallPolicy"]] = contextvars.ContextVar(
    "sigaware_registry_policy", default=None
)
#: Answers that mean "the registry is not there right now" (as opposed to a real server error).
_UNAVAILABLE_CODES = frozenset({408, 429, 502, 503, 504})
_RETRY_CODES = frozenset({408, 429, 500, 502, 503, 504})
_installed = False
_install_lock = threading.Lock()


@dataclass
class CallPolicy:
    """The deadlines of one registry operation, and what went wrong if it gave up."""

    timeout: float
    retries: int
    backoff: float
    #: Set when an HTTP request gave up on an unreachable endpoint (why, for the 503's message).
    failure: Optional[str] = None
    attempts: int = 0


def current_policy() -> Optional[CallPolicy]:
    return _POLICY.get()


@contextmanager
def policy(timeout: float, retries: int, backoff: float) -> Iterator[CallPolicy]:
    """Run MLflow calls in this block under these deadlines (this thread/task and its downloads only)."""
    install()
    current = CallPolicy(timeout=timeout, retries=retries, backoff=backoff)
    token = _POLICY.set(current)
    try:
        yield current
    finally:
        _POLICY.reset(token)


#: A kept-alive connection the server had closed: urllib3 drops it, and a new one is opened at once.
_DROPPED = ("Remote end closed connection", "Connection aborted", "Connection reset by peer", "Broken pipe")


def _transient_reason(exc: BaseException) -> Optional[tuple[str, bool]]:
    """Why a request failed, and whether a reused connection was dropped, if it is the kind that means
    "unreachable" (None otherwise: the registry answered, and its answer is MLflow's to handle)."""
    import requests

    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.Timeout):
            return "timed out", False
        if isinstance(current, (requests.exceptions.ConnectionError, requests.exceptions.RetryError)):
            text = str(current)
            dropped = next((d for d in _DROPPED if d in text), None)
            if dropped:
                return f"connection dropped ({dropped})", True
            match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
            if match:
                return match.group(0).strip(), False
            if "Name or service not known" in text or "nodename nor servname" in text:
                return "host name not found", False
            return f"connection failed ({text[:200]})", False
        current = current.__cause__ or current.__context__
    return None


def _wrap_http_request(original: Any) -> Any:
    if getattr(original, "_sigaware_wrapped", False):
        return original

    @functools.wraps(original)
    def http_request(host_creds, endpoint, method, *args, **kwargs):
        current = _POLICY.get()
        if current is None or args:
            return original(host_creds, endpoint, method, *args, **kwargs)
        kwargs["max_retries"] = 0
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = current.timeout
        kwargs["raise_on_status"] = False  # a retryable status comes back to us, not as an exception
        retry_codes = frozenset(kwargs.get("retry_codes") or _RETRY_CODES)
        host = getattr(host_creds, "host", "?")
        attempt = 0
        reconnected = False
        while True:
            current.attempts += 1
            try:
                response = original(host_creds, endpoint, method, **kwargs)
            except Exception as exc:
                transient = _transient_reason(exc)
                if transient is None:
                    raise
                reason, dropped = transient
                if dropped and not reconnected:  # a stale kept-alive connection: once, at once, not counted
                    reconnected = True
                    continue
                if attempt >= current.retries:
                    current.failure = f"{_display(host)}: {reason}"
                    raise
            else:
                code = response.status_code
                if code not in retry_codes:
                    return response
                if attempt >= current.retries:
                    if code in _UNAVAILABLE_CODES:
                        current.failure = f"{_display(host)}: HTTP {code}"
                    return response
                response.close()
            time.sleep(current.backoff * (2**attempt))
            attempt += 1

    http_request._sigaware_wrapped = True  # type: ignore[attr-defined]
    return http_request


def _context_executor(executor: Any) -> Any:
    """Make ``executor.submit`` run tasks in the submitter's context while one of our policies is set."""
    original_submit = executor.submit

    def submit(fn, /, *args, **kwargs):
        if _POLICY.get() is None:
            return original_submit(fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        return original_submit(ctx.run, fn, *args, **kwargs)

    executor.submit = submit
    return executor


def install() -> None:
    """Wrap MLflow's ``http_request`` where it is looked up, and its artifact download pool. Idempotent."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        from mlflow.store.artifact import artifact_repo, http_artifact_repo
        from mlflow.utils import rest_utils

        rest_utils.http_request = _wrap_http_request(rest_utils.http_request)
        http_artifact_repo.http_request = _wrap_http_request(http_artifact_repo.http_request)

        original_pool = artifact_repo.ArtifactRepository._create_thread_pool
        if not getattr(original_pool, "_sigaware_wrapped", False):

            @functools.wraps(original_pool)
            def _create_thread_pool(self):
                return _context_executor(original_pool(self))

            _create_thread_pool._sigaware_wrapped = True  # type: ignore[attr-defined]
            artifact_repo.ArtifactRepository._create_thread_pool = _create_thread_pool
        _installed = True


def _display(uri: str) -> str:
    """A URI without credentials (``https://user:token@host`` -> ``https://host``), for logs and labels."""
    return re.sub(r"//[^/@]*@", "//", uri)


display_uri = _display
