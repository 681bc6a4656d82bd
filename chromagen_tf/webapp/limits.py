"""Job admission for the web app: so many running, so many waiting."""

import asyncio
import contextlib
from typing import AsyncIterator


class Busy(Exception):
    """The limiter has no room for another request."""


class JobLimiter:
    """Admission at arrival, and a limit on the jobs that run at once."""

    def __init__(self, max_running: int, max_waiting: int):
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.admitted = 0
        self.running = 0
        self.refused = 0
        self._slots = asyncio.Semaphore(max_running)

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Holds a place for one request.

        Raises:
          Busy: max_running + max_waiting requests hold places already.
        """
        if self.admitted >= self.max_running + self.max_waiting:
            self.refused += 1
            raise Busy()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Waits for one of the max_running slots (inside `admit`)."""
        async with self._slots:
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1
