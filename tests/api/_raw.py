"""A hostile HTTP server for the API tests: raw bytes on a TCP socket, no HTTP library."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Self

Writer = Callable[[asyncio.StreamWriter], Awaitable[None]]
#: An answer: bytes written as they are, or a coroutine function that writes to the socket.
Script = bytes | Writer


def http(status: str, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    """An HTTP/1.1 answer, well formed unless its parts say otherwise."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_answer(body: bytes, *headers: str) -> bytes:
    """A 200 answer with a JSON body."""
    return http("200 OK", body, "Content-Type: application/json", *headers)


class RawServer:
    """Answers the n-th request with ``answers[n]`` (the last one again once they run out).

    Reads each request whole (head and Content-Length body) before answering, and records
    it in ``requests``. ``hang()`` as an answer never answers.
    """

    def __init__(self, *answers: Script) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                self.arrived.set()
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                else:
                    await answer(writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()


def hang() -> Writer:
    """An answer that never comes."""

    async def write(writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    return write


def close_after(data: bytes) -> Writer:
    """Writes ``data``, then closes the connection."""

    async def write(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()
        raise ConnectionResetError  # ends the handler's loop

    return write


def endless(head: bytes, chunk: bytes = b"[" * 65536) -> Writer:
    """Writes ``head``, then ``chunk`` after ``chunk`` until the client goes away."""

    async def write(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        while True:
            writer.write(chunk)
            await writer.drain()

    return write
