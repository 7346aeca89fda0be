"""Concurrent clients sending one request in a loop until stopped; every answer recorded with its times."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import requests

__all__ = ["Answer", "Load"]


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    received: float
    status: int  # -1: no HTTP answer (reset, refused, timeout)
    body: Any  # the first output's first value on 200, else the text or the exception


class Load:
    def __init__(self, url: str, body: dict, headers: Optional[dict] = None, clients: int = 4,
                 timeout: float = 60, pause: float = 0.0):
        self.url, self.body, self.headers, self.timeout = url, body, headers or {}, timeout
        self.pause = pause  # between a client's requests: leaves CPU to the rest of the test on 2 cores
        self.stop = threading.Event()
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                r = session.post(self.url, json=self.body, headers=self.headers, timeout=self.timeout)
                status = r.status_code
                body = r.json()["outputs"][0]["data"][0] if status == 200 else r.text
            except Exception as exc:  # a dropped connection is a failure too
                status, body = -1, repr(exc)
            with self.lock:
                self.answers.append(Answer(sent, time.monotonic(), status, body))
            if self.pause:
                self.stop.wait(self.pause)

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def since(self, t0: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.sent >= t0]

    def failures(self) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.status != 200]

    def wait_for(self, body: Any, timeout: float) -> float:
        """Seconds until every answer of the last half second is ``body``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            recent = self.since(time.monotonic() - 0.5)
            if recent and all(a.body == body for a in recent):
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"answers did not switch to {body!r} in {timeout}s: {self.since(start)[-5:]}")

    def first(self, body: Any, since: float, timeout: float) -> float:
        """When (``time.monotonic()``) the first answer ``body`` sent after ``since`` came back."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for a in self.since(since):
                if a.body == body:
                    return a.received
            time.sleep(0.05)
        raise AssertionError(f"no answer {body!r} within {timeout}s: {self.since(since)[-5:]}")
