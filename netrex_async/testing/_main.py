"""``python -m netrex_async.testing``: run the fake provider until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from .._provider import is_loopback_host
from ._live import EventSource
from ._records import RecordedRequest
from ._server import DEFAULT_CLIENT_ID, DEFAULT_REDIRECT_URI, FakeNetrex

__all__ = ["build_parser", "main"]


def _loopback(value: str) -> str:
    if not is_loopback_host(value):
        raise argparse.ArgumentTypeError(f"not a loopback host: {value!r}")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line parser (shared with ``netrex-async fake-server``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run a fake Netrex provider (OAuth2 endpoints and a GraphQL API) on loopback, "
            "for manual work, demos and benchmarks. Stop it with Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--host", type=_loopback, default="127.0.0.1", help="a loopback address")
    p.add_argument("--port", type=int, default=0, metavar="N", help="port (default: a free one)")
    p.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        metavar="ID",
        help=f"the app's client id (default: {DEFAULT_CLIENT_ID})",
    )
    p.add_argument(
        "--client-secret",
        default=None,
        metavar="SECRET",
        help="its client secret (default: random)",
    )
    p.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help=f"a registered redirect URI; repeatable (default: {DEFAULT_REDIRECT_URI})",
    )
    p.add_argument(
        "--expires-in",
        type=_seconds,
        default=3600.0,
        metavar="S",
        help="access token lifetime, seconds (default: 3600)",
    )
    p.add_argument("--no-rotate", action="store_true", help="keep refresh tokens across refreshes")
    p.add_argument(
        "--no-reuse-detection",
        action="store_true",
        help="do not revoke a grant whose rotated-out refresh token comes back",
    )
    p.add_argument(
        "--accept-params-in",
        choices=("query", "body", "either"),
        default="either",
        help="where the token endpoint reads its parameters (default: either)",
    )
    p.add_argument(
        "--consent",
        choices=("approve", "deny"),
        default="approve",
        help="what the simulated user answers at /oauth2/auth (default: approve)",
    )
    p.add_argument(
        "--require-pkce",
        action="store_true",
        help="refuse authorization requests without a PKCE challenge",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="execute every GraphQL query (default: reuse answers while the data is unchanged)",
    )
    p.add_argument(
        "--events",
        type=int,
        default=0,
        metavar="N",
        help="make N camera events at start (a backlog for a collector)",
    )
    p.add_argument(
        "--event-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="make R camera events a second while it runs (a live stream)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (base_url, client_id, client_secret, redirect_uri)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print each request (secrets hidden)"
    )
    return p


def make_fake(args: argparse.Namespace) -> FakeNetrex:
    """A fake configured from parsed arguments."""
    uris: list[str] = args.redirect_uri or [DEFAULT_REDIRECT_URI]

    def show(record: RecordedRequest) -> None:
        sys.stderr.write(f"{record}\n")
        sys.stderr.flush()

    fake = FakeNetrex(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        redirect_uri=uris[0],
        extra_redirect_uris=uris[1:],
        expires_in=args.expires_in,
        rotate_refresh_tokens=not args.no_rotate,
        reuse_detection=not args.no_reuse_detection,
        accept_params_in=args.accept_params_in,
        consent=args.consent,
        require_pkce=args.require_pkce,
        on_request=show if args.verbose else None,
        cache_results=not args.no_cache,
        # A long-running server keeps no unbounded log.
        log_size=1000,
    )
    if args.client_secret:
        fake.client_secret = args.client_secret
    return fake


def _describe(fake: FakeNetrex) -> str:
    p = fake.provider
    return "\n".join(
        [
            f"Fake Netrex provider listening on {fake.base_url}",
            f"  client_id:     {fake.client_id}",
            f"  client_secret: {fake.client_secret}",
            f"  redirect_uri:  {', '.join(fake.redirect_uris)}",
            f"  authorize:     {p.auth_url}",
            f"  token:         {p.token_url}",
            f"  revoke:        {p.revoke_url}",
            f"  GraphQL:       {p.graphql_url}",
            "Press Ctrl-C to stop.",
        ]
    )


async def serve(args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
    """Run the fake until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with make_fake(args) as fake:
            if args.events > 0:
                EventSource(fake.data, 1.0).make(args.events)
            if args.event_rate > 0:
                fake.start_events(args.event_rate)
            if args.json:
                line = {
                    "base_url": fake.base_url,
                    "client_id": fake.client_id,
                    "client_secret": fake.client_secret,
                    "redirect_uri": fake.redirect_uri,
                    "redirect_uris": list(fake.redirect_uris),
                }
                out.write(json.dumps(line) + "\n")
            else:
                out.write(_describe(fake) + "\n")
            out.flush()
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; the exit status (0, or 2 for bad usage)."""
    args = build_parser(prog).parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:  # no signal handlers on this platform
        pass
    except OSError as e:
        sys.stderr.write(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}\n")
        return 1
    return 0
