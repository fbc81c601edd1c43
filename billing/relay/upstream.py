"""The one client module for upstream channels (OpenAI-compatible HTTP APIs), and the sandbox's stand-in.

One pooled `httpx.AsyncClient` per relay process serves every upstream request (`client_start` at
startup, `client_stop` at shutdown; Celery tasks open their own with `standalone_client`). Failures
that another channel may not have (timeout, connection error, 429, 5xx) raise `UpstreamError` with
`retryable=True` before any byte reaches the client; a 4xx is the client's fault and is returned for the
relay to pass through. The channel's key goes out in the Authorization header and nowhere else: it is
never part of an error message or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from django.conf import settings

from billing.relay.channels import Route
from billing.relay.sandbox import SandboxTransport

USER_AGENT = "SynStar-relay/1"

_client: httpx.AsyncClient | None = None
_sandbox: httpx.AsyncClient | None = None


class UpstreamError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


def _new_client() -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.RELAY_MAX_UPSTREAM_CONNECTIONS,
        max_keepalive_connections=settings.RELAY_MAX_UPSTREAM_CONNECTIONS,
        # Below common servers' keep-alive (uvicorn's 5 s): an idle connection is dropped by us first, not
        # closed under a request by the upstream.
        keepalive_expiry=settings.RELAY_UPSTREAM_KEEPALIVE_SECONDS,
    )
    return httpx.AsyncClient(limits=limits, headers={"User-Agent": USER_AGENT}, follow_redirects=False)


def _new_sandbox() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=SandboxTransport(), base_url="http://sandbox.invalid")


def client_start() -> None:
    global _client, _sandbox
    _client, _sandbox = _new_client(), _new_sandbox()


async def client_stop() -> None:
    global _client, _sandbox
    for c in (_client, _sandbox):
        if c is not None:
            await c.aclose()
    _client = _sandbox = None


@contextlib.asynccontextmanager
async def standalone_client() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A (client, sandbox client) pair for code outside the relay's event loop (Celery tasks)."""
    async with _new_client() as client, _new_sandbox() as sandbox:
        yield client, sandbox


def run_sync(coro: Coroutine) -> Any:
    """Run upstream calls from synchronous code (Celery tasks): in this thread, or in a thread of its own
    when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pick(route: Route, clients: tuple[httpx.AsyncClient, httpx.AsyncClient] | None) -> httpx.AsyncClient:
    if clients is None:
        if _client is None or _sandbox is None:
            client_start()
        clients = (_client, _sandbox)  # type: ignore[assignment]
    assert clients is not None
    return clients[1] if route.kind == "sandbox" else clients[0]


def _url(route: Route, path: str) -> str:
    return f"{'' if route.kind == 'sandbox' else route.base_url}{path}"


async def send(
    route: Route,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: dict | None = None,
    files: list | None = None,
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient] | None = None,
    read_timeout: float | None = None,
) -> httpx.Response:
    """Send a request to the channel and return the response with its body not yet read (stream it or
    `aread` it; `aclose` it either way). Raises UpstreamError for what another channel may not have."""
    client = _pick(route, clients)
    timeout = httpx.Timeout(read_timeout or route.read_timeout, connect=route.connect_timeout)
    headers = {"Authorization": f"Bearer {route.api_key}"} if route.api_key else {}
    for attempt in (1, 2):
        request = client.build_request(method, _url(route, path), json=json, data=data, files=files, headers=headers, timeout=timeout)
        try:
            response = await client.send(request, stream=True)
            break
        except httpx.TimeoutException:
            raise UpstreamError(f"{route.channel_name}: timed out", retryable=True) from None
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            # A pooled connection the upstream closed as we reused it: once more on a fresh one.
            if attempt == 2:
                raise UpstreamError(f"{route.channel_name}: connection failed ({type(exc).__name__})", retryable=True) from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"{route.channel_name}: connection failed ({type(exc).__name__})", retryable=True) from None
    if response.status_code == 429 or response.status_code >= 500:
        try:
            detail = (await response.aread())[:300].decode("utf-8", "replace")
        except httpx.HTTPError:
            detail = ""
        finally:
            await response.aclose()
        raise UpstreamError(
            f"{route.channel_name}: HTTP {response.status_code} {detail}".strip(), retryable=True, status=response.status_code
        )
    return response


async def probe(route: Route, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> str | None:
    """Is the channel answering? GET /models; None when it is, else what went wrong."""
    try:
        response = await send(route, "GET", "/models", clients=clients, read_timeout=min(route.read_timeout, 10))
    except UpstreamError as exc:
        return exc.message
    try:
        await response.aread()
    finally:
        await response.aclose()
    return None if response.status_code < 400 else f"{route.channel_name}: HTTP {response.status_code}"
