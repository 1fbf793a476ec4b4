"""Cancellation at every await of the refresh transaction.

``lock -> load -> refresh request -> save -> unlock -> hooks``: a wrapper stops the
transaction at one step, something is cancelled there, and then it goes on. Whatever was
cancelled, the other callers finish, the store holds the old or the new token (never a
half-written one), the lock is free, and the grant still works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from netrex_async import (
    NetrexError,
    OAuth2App,
    OAuth2Client,
    Token,
    TokenEvent,
    TokenManager,
    TokenRefreshed,
)
from netrex_async._stores._file import FileTokenStore
from netrex_async.testing import FakeNetrex

from ._helpers import Pause, PausingOAuth, PausingStore, _Pauser, expired_token

STORE_STEPS = ("lock", "locked", "load", "save", "saved", "unlock")
STEPS = (*STORE_STEPS, "refresh", "hook")


@attrs.define
class Transaction:
    fake: FakeNetrex
    path: Path
    old: Token
    store: PausingStore
    oauth: PausingOAuth
    hooks: _Pauser
    manager: TokenManager

    def pause_at(self, step: str) -> Pause:
        if step == "refresh":
            return self.oauth.pause_at(step)
        if step == "hook":
            return self.hooks.pause_at(step)
        return self.store.pause_at(step)

    async def assert_consistent(self) -> None:
        """Old or new token in the file, lock free, no temp file, grant alive."""
        await self.manager.settle()  # a save may still be under way: callers go first
        stored = await FileTokenStore(self.path).load()
        assert stored is not None
        valid = {self.old.access_token, *self.fake.grants[0].access_tokens}
        assert stored.access_token in valid
        assert sorted(p.name for p in self.path.parent.iterdir()) == [
            self.path.name,
            self.path.name + ".lock",
        ]
        async with asyncio.timeout(2), FileTokenStore(self.path).lock():
            pass
        assert self.fake.counters.reuse_detected == 0
        assert not self.fake.grants[0].revoked


@pytest.fixture(name="tx")
async def _tx(fake: FakeNetrex, app: OAuth2App, tmp_path: Path) -> AsyncIterator[Transaction]:
    path = tmp_path / "token.json"
    old = expired_token(fake)
    inner = FileTokenStore(path, lock_timeout=5)
    await inner.save(old)
    store = PausingStore(inner)
    hooks = _Pauser()

    async def hook(event: TokenEvent) -> None:
        if isinstance(event, TokenRefreshed):
            await hooks._step("hook")

    async with OAuth2Client(app) as real:
        oauth = PausingOAuth(real)
        manager = TokenManager(oauth, store, background=False, hooks=[hook])  # type: ignore[arg-type]
        try:
            yield Transaction(fake, path, old, store, oauth, hooks, manager)
        finally:
            await manager.aclose()


@pytest.mark.parametrize("step", STEPS)
async def test_cancelled_caller(tx, step):
    pause = tx.pause_at(step)
    first = asyncio.create_task(tx.manager.token())
    others = [asyncio.create_task(tx.manager.token()) for _ in range(5)]
    await pause.wait_reached()
    first.cancel()
    await asyncio.sleep(0.01)
    pause.release.set()
    tokens = await asyncio.wait_for(asyncio.gather(*others), 5)
    if step not in ("save", "saved", "unlock", "hook"):  # callers have their token by then
        assert first.cancelled()
    assert len(set(tokens)) == 1
    assert tx.fake.is_valid(tokens[0])
    assert tx.fake.counters.refreshes == 1  # the refresh went on, once, for everyone
    assert await tx.manager.token() == tokens[0]
    await tx.manager.settle()  # callers get the new token before its save ends
    assert (await FileTokenStore(tx.path).load()).access_token == tokens[0]
    await tx.assert_consistent()


@pytest.mark.parametrize("step", STEPS)
async def test_cancelled_refresh_task(tx, app, step):
    # The refresh task itself is cancelled (loop shutdown, aclose() giving up): waiters
    # finish, and another process sharing the file, which goes on while the cancelled
    # transaction is still stopped, must not refresh with a rotated-out refresh token.
    pause = tx.pause_at(step)
    waiter = asyncio.create_task(tx.manager.token())
    await pause.wait_reached()
    task = tx.manager._flight.task
    assert task is not None
    task.cancel()
    await asyncio.sleep(0.01)
    async with OAuth2Client(app) as oauth:
        other = TokenManager(oauth, FileTokenStore(tx.path, lock_timeout=5), background=False)
        other_call = asyncio.create_task(other.token())
        await asyncio.sleep(0.2)  # the other process gets as far as it can meanwhile
        pause.release.set()
        done, _ = await asyncio.wait({waiter}, timeout=5)
        assert waiter in done, "a waiter hangs after the refresh task was cancelled"
        if not waiter.cancelled() and waiter.exception() is None:
            assert tx.fake.is_valid(waiter.result())
        elif not waiter.cancelled():
            assert isinstance(waiter.exception(), NetrexError)
        other_token = await asyncio.wait_for(other_call, 5)
        assert tx.fake.is_valid(other_token)
        await other.aclose()
    fresh = await asyncio.wait_for(tx.manager.token(), 5)
    assert tx.fake.is_valid(fresh)
    await tx.assert_consistent()


async def test_cancelled_waiters_do_not_cancel_the_refresh(tx):
    pause = tx.pause_at("refresh")
    callers = [asyncio.create_task(tx.manager.token()) for _ in range(20)]
    await pause.wait_reached()
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    pause.release.set()
    fresh = await asyncio.wait_for(tx.manager.token(), 5)
    assert tx.fake.is_valid(fresh)
    assert tx.fake.counters.refreshes == 1
    await tx.assert_consistent()


async def test_caller_arriving_during_a_slow_hook_does_not_wait_for_it(tx):
    pause = tx.pause_at("hook")
    first = asyncio.create_task(tx.manager.token())
    await pause.wait_reached()
    # The new token is installed before the hooks run: a new caller takes it at once.
    fresh = await asyncio.wait_for(tx.manager.token(), 1)
    assert tx.fake.is_valid(fresh)
    pause.release.set()
    assert await first == fresh


async def test_aclose_during_a_refresh_keeps_the_store_consistent(tx):
    pause = tx.pause_at("save")
    caller = asyncio.create_task(tx.manager.token())
    await pause.wait_reached()
    closing = asyncio.create_task(tx.manager.aclose())
    await asyncio.sleep(0.05)
    pause.release.set()
    await asyncio.wait_for(closing, 5)
    fresh = await asyncio.wait_for(caller, 5)
    assert tx.fake.is_valid(fresh)
    await tx.manager.settle()
    assert (await FileTokenStore(tx.path).load()).access_token == fresh
    await tx.assert_consistent()
