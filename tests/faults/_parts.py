"""Parts for the fault suite: a provider that rotates and revokes on reuse, and stores
that fail or hang on cue. No network: these run on looptime's virtual clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from netrex_async import (
    InvalidGrant,
    MemoryTokenStore,
    OAuth2App,
    Provider,
    Token,
    TokenStoreError,
    TransportError,
)


def virtual_wall(offset: float = 0.0) -> Callable[[], float]:
    """A wall clock on the event loop's (virtual) time line, ``offset`` seconds off."""

    def now() -> float:
        return 1.7e9 + offset + asyncio.get_running_loop().time()

    return now


class RotatingProvider:
    """Stands in for OAuth2Client: every refresh rotates the refresh token, and a
    rotated-out one presented again revokes the grant (reuse detection), as the real
    provider may. Records every refresh token presented."""

    def __init__(
        self,
        *,
        lifetime: float = 60.0,
        delay: float = 0.0,
        clock: Callable[[], float] | None = None,
        worst_case: float | None = None,
    ) -> None:
        self.app = OAuth2App(
            client_id="cid",
            client_secret="client-secret-value",
            redirect_uri="http://127.0.0.1:1/cb",
            provider=Provider("http://127.0.0.1:1"),
        )
        self.lifetime = lifetime
        self.delay = delay
        self.clock = clock or virtual_wall()
        if worst_case is not None:
            self.worst_case = worst_case
        self._n = itertools.count(1)
        self.current: Token = self._issue()
        self.retired: set[str] = set()
        self.presented: list[str] = []
        self.revoked = False
        self.down = 0  # the next N refreshes fail with a TransportError
        self.calls = 0

    def _issue(self) -> Token:
        n = next(self._n)
        now = self.clock()
        return Token(
            access_token=f"access-{n}-secret-value",
            refresh_token=f"refresh-{n}-secret-value",
            issued_at=now,
            expires_at=now + self.lifetime,
        )

    def first(self) -> Token:
        """The grant's first token, as a login would store it."""
        return self.current

    async def refresh(self, token: Token) -> Token:
        self.calls += 1
        assert token.refresh_token is not None
        self.presented.append(token.refresh_token)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            self.down -= 1
            raise TransportError("the token endpoint is down")
        if self.revoked:
            raise InvalidGrant("invalid_grant: the grant was revoked", error="invalid_grant")
        if token.refresh_token in self.retired:
            self.revoked = True  # reuse: the whole grant dies
            raise InvalidGrant("invalid_grant: refresh token reuse", error="invalid_grant")
        if token.refresh_token != self.current.refresh_token:
            raise InvalidGrant("invalid_grant: unknown refresh token", error="invalid_grant")
        assert self.current.refresh_token is not None
        self.retired.add(self.current.refresh_token)
        self.current = self._issue()
        return self.current

    def is_valid(self, access_token: str) -> bool:
        """Whether the API would take ``access_token`` now."""
        return (
            not self.revoked
            and access_token == self.current.access_token
            and self.clock() < (self.current.expires_at or float("inf"))
        )

    def assert_alive(self) -> None:
        assert not self.revoked, "the grant was revoked (a refresh token was reused)"
        assert len(self.presented) == len(set(self.presented)), (
            "a refresh token was presented twice"
        )


class FaultyStore(MemoryTokenStore):
    """A memory store whose saves (or loads) fail or hang on cue.

    ``fail_saves``: the next N saves raise TokenStoreError. ``hang_saves``: the next N
    saves never return. ``lease`` and ``lose_lease`` model a lock with an expiry.
    """

    def __init__(self, token: Token | None = None, **kw: object) -> None:
        super().__init__(token)
        self.fail_saves = 0
        self.hang_saves = 0
        self.fail_loads = 0
        self.saves = 0
        self.lease_lost = False
        self.lease_checks = 0
        for k, v in kw.items():
            setattr(self, k, v)

    @property
    def description(self) -> str:
        return "faulty memory"

    async def save(self, token: Token) -> None:
        self.saves += 1
        if self.hang_saves:
            self.hang_saves -= 1
            await asyncio.Event().wait()  # never
        if self.fail_saves:
            self.fail_saves -= 1
            raise TokenStoreError("cannot write: No space left on device", store="faulty")
        await super().save(token)

    async def load(self) -> Token | None:
        if self.fail_loads:
            self.fail_loads -= 1
            raise TokenStoreError("cannot read: connection refused", store="faulty")
        return await super().load()

    async def check_lease(self) -> None:
        self.lease_checks += 1
        if self.lease_lost:
            raise TokenStoreError("the lock on faulty memory was lost", store="faulty")


class LeasedStore(FaultyStore):
    """A store whose lock states a lease (in seconds)."""

    def __init__(self, token: Token | None = None, *, lease: float) -> None:
        super().__init__(token)
        self._lease = lease

    @property
    def lease(self) -> float:  # type: ignore[override]
        return self._lease


@asynccontextmanager
async def callers(
    source: Callable[[], object], n: int, every: float, results: list[object]
) -> AsyncIterator[None]:
    """``n`` tasks calling ``source()`` every ``every`` seconds until the block ends."""

    async def loop() -> None:
        while True:
            try:
                results.append(await source())  # type: ignore[misc]
            except Exception as e:
                results.append(e)
            await asyncio.sleep(every)

    tasks = [asyncio.create_task(loop()) for _ in range(n)]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
