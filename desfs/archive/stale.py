"""Stale-if-error: what a listing does while the store does not answer.

Listings of the root and of days are trusted for `listing_ttl`. When a refresh fails
because the store is away (timeouts, refused connections, 5xx after retries), the last
listing keeps serving for as long as the outage lasts: one warning when it starts, one
line when the store answers again, and a counter. The store is asked again at most every
`RETRY_SECONDS`, so an outage does not turn every lookup into a wait for a timeout. A store
that answers "no such bucket" or "access denied" is not away: that answer is passed on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from desfs.errors import AccessDenied, ObjectChanged, ObjectMissing, StorageError

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


class StaleIfError:
    def __init__(self, where: str, ttl: float, clock: Callable[[], float]) -> None:
        self._where = where
        self._retry = min(ttl, RETRY_SECONDS) if ttl > 0 else RETRY_SECONDS
        self._clock = clock
        self._since: float | None = None  # when the current outage was first seen
        self.count = 0

    @staticmethod
    def usable(exc: StorageError) -> bool:
        """Whether the failure means the store is away, not that it said no."""
        return not isinstance(exc, ObjectMissing | AccessDenied | ObjectChanged)

    def retry_at(self) -> float:
        return self._clock() + self._retry

    def served(self, exc: StorageError, what: str) -> None:
        self.count += 1
        if self._since is None:
            self._since = self._clock()
            log.warning(
                "%s does not answer (%s); serving the last listings of %s and others until it does",
                self._where,
                exc,
                what,
            )

    def answered(self) -> None:
        if self._since is not None:
            log.warning("%s answers again after %.0f s", self._where, self._clock() - self._since)
            self._since = None
