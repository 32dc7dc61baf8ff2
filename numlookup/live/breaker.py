"""A circuit breaker per live source, so requests stop queueing behind a source that fails.

After ``failures`` consecutive failures the circuit opens: calls fail at once,
without touching the source, for ``reset_seconds``. Then it is half-open: one
probe call may go through; its success closes the circuit, its failure opens it
again for another ``reset_seconds``. The clock is injectable so the state
machine can be tested without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import IntEnum

log = logging.getLogger("numlookup.live")


class CircuitState(IntEnum):
    """Values double as the metrics gauge: 0 closed, 1 half-open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int = 5,
        reset_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        self.name = name
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at = 0.0
        self._state = CircuitState.CLOSED
        self._probe_out = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.reset_seconds:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go to the source now? In half-open state only one probe at a time may."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._probe_out = False
        if self._state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def failure(self) -> None:
        self._failures += 1
        self._probe_out = False
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        log.warning("live source %s: circuit %s", self.name, state.name.lower().replace("_", "-"))
        if self._on_change is not None:
            self._on_change(self.name, state)
