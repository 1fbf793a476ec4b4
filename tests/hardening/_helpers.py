"""Tools of the hardening suite: a lossy TCP proxy, pausing wrappers, a recording server."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.test_utils import TestServer

from netrex_async import OAuth2App, OAuth2Client, Token
from netrex_async.testing import FakeNetrex


def long_secret(label: str) -> str:
    """A secret long enough for the leak scanner, with characters URLs encode."""
    return f"{label}-{secrets.token_urlsafe(18)}+/="


def app_for(fake: FakeNetrex, **kwargs: Any) -> OAuth2App:
    """The registered app of ``fake``, with its client secret (permanent grants)."""
    kwargs.setdefault("client_secret", fake.client_secret)
    if "provider" not in kwargs:
        kwargs["provider"] = fake.provider
    return OAuth2App(client_id=fake.client_id, redirect_uri=fake.redirect_uri, **kwargs)


def expired_token(fake: FakeNetrex) -> Token:
    """A refreshable token of a new grant at ``fake`` that has just expired."""
    token = fake.issue_token(expires_in=3600)
    fake.expire_token(token)
    now = time.time()
    return Token(
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        issued_at=now - 3600,
        expires_at=now - 1,
        scopes=token.scopes,
    )


class Pause:
    """One stop of a pausing wrapper: ``reached`` is set there; it waits for ``release``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def wait_reached(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout)


class _Pauser:
    def __init__(self) -> None:
        self._pauses: dict[str, Pause] = {}
        self.steps: list[str] = []

    def pause_at(self, step: str) -> Pause:
        """Stop the next time ``step`` is reached, until the pause is released."""
        pause = self._pauses[step] = Pause()
        return pause

    async def _step(self, name: str) -> None:
        self.steps.append(name)
        pause = self._pauses.pop(name, None)
        if pause is not None:
            pause.reached.set()
            await pause.release.wait()


class PausingStore(_Pauser):
    """A TokenStore wrapper that can stop at each step of a refresh transaction.

    Steps: ``lock`` (before acquiring), ``locked`` (just acquired), ``load``, ``save``
    (before), ``saved`` (after), ``unlock`` (before releasing).
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    @property
    def description(self) -> str:
        return str(getattr(self.inner, "description", "pausing store"))

    async def load(self) -> Token | None:
        await self._step("load")
        token: Token | None = await self.inner.load()
        return token

    async def save(self, token: Token) -> None:
        await self._step("save")
        await self.inner.save(token)
        await self._step("saved")

    async def clear(self) -> None:
        await self.inner.clear()

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        await self._step("lock")
        async with self.inner.lock():
            await self._step("locked")
            try:
                yield
            finally:
                await self._step("unlock")

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class PausingOAuth(_Pauser):
    """An OAuth2Client wrapper that can stop before the refresh request (step ``refresh``)."""

    def __init__(self, inner: OAuth2Client) -> None:
        super().__init__()
        self.inner = inner
        self.app = inner.app
        self.calls = 0

    async def refresh(self, token: Token) -> Token:
        self.calls += 1
        await self._step("refresh")
        return await self.inner.refresh(token)


class TcpProxy:
    """A byte pipe to ``host:port`` that can lose answers or go away, like a network.

    ``lose_answers = n``: the next ``n`` answers are read from upstream (so the server did
    the work) and then the client's connection is closed instead of relaying them.
    ``await stop()`` closes the listening socket and every connection: the service is down.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.lose_answers = 0
        self.lost = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        def close_both() -> None:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool) -> None:
            try:
                while data := await src.read(65536):
                    if answers and self.lose_answers > 0:
                        self.lose_answers -= 1
                        self.lost += 1
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                close_both()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Recorder:
    """A server on loopback that records every request (any method, any path)."""

    def __init__(self, answer: Callable[[web.Request], web.StreamResponse] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._answer = answer
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append((request.method, request.path, dict(request.headers)))
        if self._answer is not None:
            return self._answer(request)
        return web.json_response({"data": {"recorded": True}})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client
    context that trusts exactly that certificate (needs ``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = folder / "cert.pem"
    key_file = folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
