"""A scripted stand-in for OAuth2Client, for TokenManager tests without HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from netrex_async import InvalidGrant, OAuth2App, Provider, Token


def make_token(
    n: int = 0, *, lifetime: float | None = 60.0, refresh: bool = True, now: float | None = None
) -> Token:
    now = time.time() if now is None else now
    return Token(
        access_token=f"access-{n}-secret",
        refresh_token=f"refresh-{n}-secret" if refresh else None,
        issued_at=now,
        expires_at=None if lifetime is None else now + lifetime,
        scopes=("read",),
    )


class ScriptedOAuth:
    """Answers refresh() with numbered tokens; can delay, fail, or refuse the grant."""

    def __init__(self, lifetime: float | None = 60.0, delay: float = 0.0) -> None:
        self.app = OAuth2App(
            client_id="cid",
            client_secret="client-secret-value",
            redirect_uri="http://127.0.0.1:1/cb",
            provider=Provider("http://127.0.0.1:1"),
        )
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0
        self.seen: list[str | None] = []
        self.fail_next: list[BaseException] = []
        self.started = asyncio.Event()
        self.on_call: Callable[[Token], None] | None = None

    async def refresh(self, token: Token) -> Token:
        self.calls += 1
        self.seen.append(token.refresh_token)
        self.started.set()
        if self.on_call is not None:
            self.on_call(token)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            raise self.fail_next.pop(0)
        return make_token(1000 + self.calls, lifetime=self.lifetime)

    def refuse(self) -> None:
        self.fail_next.append(
            InvalidGrant(
                "the token endpoint refused: invalid_grant", error="invalid_grant", status=400
            )
        )
