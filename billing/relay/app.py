"""The relay's HTTP surface: OpenAI-compatible routes (Starlette), served in front of Django by
`synstar.asgi` so the hot path crosses no sync middleware.

Every metered request runs the same steps (`Call`): authenticate and hold (`metering_hold`, in the
database thread pool), pick a channel, forward (the next channel on a timeout, connection error, 429 or
5xx before the first byte), read the usage, report it (`metering_report`), answer with `id` = `gen-...`,
an `X-Generation-Id` header and `usage.cost` (USD). Whatever goes wrong after the hold, the hold is
reported failed (released, nothing charged) or charged for what was produced; never left open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from decimal import Decimal
from functools import partial, wraps
from typing import Any

import httpx
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute
from starlette.types import Receive, Scope, Send

from billing.models import Generation
from billing.relay import estimate, upstream, videos
from billing.relay.channels import ModelInfo, Route, Snapshot, channel_failed, channel_succeeded, snapshot_load
from billing.relay.estimate import Estimate, text_tokens
from billing.relay.gateway import relay_gateway, relay_gateway_cached
from billing.relay.upstream import UpstreamError
from billing.services.metering import metering_hold, metering_report
from billing.services.metering.pricing import MAX_TOKENS, MAX_UNITS, Usage, charge
from billing.services.tokens import token_authenticate
from synstar.errors import AuthenticationFailed, InvalidRequest, NotFound, SynstarError
from synstar.i18n import language_from_accept_language, lazy_format
from synstar.logging import request_id_var, request_log

logger = logging.getLogger(__name__)


class ModelNotFound(InvalidRequest):
    status = 404
    code = "model_not_found"


class ModelNotAvailable(SynstarError):
    status = 503
    type = "upstream_error"
    code = "model_not_available"


class UpstreamUnavailable(SynstarError):
    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"


class RequestTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


# --- the database, from the event loop ---------------------------------------------------------------
# Django's ORM is synchronous: the relay runs it in a pool of threads, each keeping its own connection
# (CONN_MAX_AGE, health-checked before each call as Django does per request).

_executor: ThreadPoolExecutor | None = None


def _db_call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    close_old_connections()
    return fn(*args, **kwargs)


async def run_db(fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.RELAY_DB_THREADS, thread_name_prefix="relay-db")
    return await asyncio.get_running_loop().run_in_executor(_executor, partial(_db_call, fn, args, kwargs))


def _close_thread_connection(barrier: threading.Barrier) -> None:
    with suppress(Exception):
        barrier.wait(5)
    connections.close_all()


def db_shutdown() -> None:
    """Close every pool thread's connection, then the pool (at shutdown; tests drop their database after)."""
    global _executor
    if _executor is None:
        return
    n = settings.RELAY_DB_THREADS
    barrier = threading.Barrier(n)
    for _i in range(n):
        _executor.submit(_close_thread_connection, barrier)
    _executor.shutdown(wait=True)
    _executor = None


# --- channels snapshot -------------------------------------------------------------------------------

_snapshot: Snapshot | None = None
_refresh: asyncio.Task | None = None


async def current_snapshot() -> Snapshot:
    global _snapshot, _refresh
    if _snapshot is None:
        _snapshot = await run_db(snapshot_load)
    elif time.monotonic() - _snapshot.loaded_at > settings.RELAY_CHANNEL_REFRESH_SECONDS and (_refresh is None or _refresh.done()):
        _refresh = asyncio.ensure_future(_reload())
    return _snapshot


async def _reload() -> None:
    global _snapshot
    try:
        _snapshot = await run_db(snapshot_load)
    except Exception:  # keep serving from the last snapshot
        logger.exception("relay: could not reload channels")


def snapshot_forget() -> None:
    global _snapshot
    _snapshot = None


async def _gateway():
    """The built-in gateway row (read once per process; no thread hop after that)."""
    gateway = relay_gateway_cached()
    return gateway if gateway is not None else await run_db(relay_gateway)


# --- request helpers ---------------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise AuthenticationFailed(
            _("Send your API token as 'Authorization: Bearer sk-...'."), code="missing_api_key"
        )
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed(_("Use the header 'Authorization: Bearer sk-...'."), code="invalid_authorization")
    return value.strip()


def _client_ip(request: Request) -> str | None:
    if settings.RELAY_TRUST_X_FORWARDED_FOR:
        forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]  # the address our proxy saw (the ones before it are the client's word)
    return request.client.host if request.client else None


def _check_size(request: Request) -> None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.RELAY_MAX_BODY_BYTES:
        raise RequestTooLarge(lazy_format(_("The request body is larger than %(value)s MB."), value=settings.RELAY_MAX_BODY_BYTES // 1_000_000))


async def _json_body(request: Request) -> dict:
    _check_size(request)
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(_("The request body must be a JSON object."), code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest(_("The request body must be a JSON object."), code="invalid_json")
    return body


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(_("model is required."), code="invalid_request", param="model")
    return model.strip()


def _cost_number(nanos: int) -> float:
    """USD as a JSON number (OpenRouter's `usage.cost`); exact to the nano-dollar in 15 significant digits."""
    return float(Decimal(nanos) / 1_000_000_000)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return min(int(value), MAX_TOKENS)


def _units(value: Any) -> Decimal | None:
    try:
        units = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None
    return min(units, MAX_UNITS) if units.is_finite() and units >= 0 else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _usage(input_tokens: int, output_tokens: int = 0, cached_tokens: int = 0, units: Decimal = Decimal(0)) -> Usage:
    """A valid Usage from an upstream's figures (clamped: an upstream's bad number is not the client's 400)."""
    input_tokens = min(max(input_tokens, 0), MAX_TOKENS)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=min(max(output_tokens, 0), MAX_TOKENS),
        cached_tokens=min(max(cached_tokens, 0), input_tokens),
        units=min(max(units, Decimal(0)), MAX_UNITS),
    )


def _message(language: str, text: str | Promise) -> str:
    with translation.override(language):
        return str(text)


def request_language(request: Request) -> str:
    """The language of the relay's error messages: Accept-Language, as LocaleMiddleware reads it for Django."""
    return language_from_accept_language(request.headers.get("accept-language", ""))


def error_response(exc: SynstarError, headers: dict | None = None, *, language: str | None = None) -> JSONResponse:
    with translation.override(language):  # the message is lazy: read in the client's language
        payload = exc.as_dict()
    payload["error"].setdefault("param", None)
    return JSONResponse(payload, status_code=exc.status, headers=headers)


def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Error shape, request id and one log line for every relay request."""

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if given.replace("-", "").replace("_", "").replace(".", "").isalnum() and len(given) <= 64 else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        try:
            try:
                response = await handler(request)
            except SynstarError as exc:
                response = error_response(exc, headers=getattr(exc, "headers", None), language=request_language(request))
            except ClientDisconnect:  # the client left before its request was read: nothing was held
                response = Response(status_code=499)
            except Exception:
                logger.exception("relay: unexpected error on %s", request.url.path)
                response = JSONResponse(
                    {"error": {"type": "server_error", "code": "internal_error", "param": None,
                               "message": _message(request_language(request),
                                                   _("Something went wrong on our side; nothing was charged for it. Try again."))}},
                    status_code=500,
                )
            response.headers["X-Request-ID"] = rid
            request_log.info(
                "%s %s %s %.1fms", request.method, request.url.path, response.status_code, (time.perf_counter() - started) * 1000,
                extra={"method": request.method, "path": request.url.path, "status": response.status_code,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                       "generation": response.headers.get("x-generation-id")},
            )
            return response
        finally:
            request_id_var.reset(token)

    return wrapper


# --- one metered call -------------------------------------------------------------------------------


class Call:
    """One metered relay request: prepare (model, channels), hold, forward, then charge or release."""

    def __init__(self, request: Request, endpoint: str):
        self.request = request
        self.endpoint = endpoint
        self.language = request_language(request)
        self.key = _bearer(request)
        self.model = ""
        self.info: ModelInfo | None = None
        self.routes: list[Route] = []
        self.route: Route | None = None
        self.generation: Generation | None = None
        self.snapshot: Snapshot | None = None
        self.closed = False

    async def prepare(self, model: str) -> ModelInfo:
        self.model = model
        self.snapshot = await current_snapshot()
        info = self.snapshot.models.get(model)
        if info is None:
            raise ModelNotFound(lazy_format(_("The model %(model)s does not exist. GET /v1/models lists the models you can use."), model=repr(model)), param="model")
        self.routes = self.snapshot.candidates(model)[: settings.RELAY_MAX_ATTEMPTS]
        if not self.routes:
            raise ModelNotAvailable(lazy_format(_("No upstream serves %(model)s right now; nothing was charged."), model=repr(model)))
        self.info = info
        return info

    async def hold(self, est: Estimate, *, hold_seconds: int | None = None) -> Generation:
        gateway = await _gateway()
        self.generation = await run_db(
            metering_hold, gateway=gateway, token_key=self.key, model_name=self.model, endpoint=self.endpoint,
            input_tokens=est.input_tokens, max_output_tokens=est.max_output_tokens, units=est.units,
            client_ip=_client_ip(self.request), hold_seconds=hold_seconds,
        )
        return self.generation

    @property
    def gen_id(self) -> str:
        assert self.generation is not None
        return self.generation.public_id

    def headers(self, cost: int | None = None) -> dict[str, str]:
        headers = {"X-Generation-Id": self.gen_id}
        if cost is not None:
            headers["X-Generation-Cost"] = f"{Decimal(cost) / 1_000_000_000:f}"
        return headers

    async def forward(self, method: str, path: str, build: Callable[[Route], dict]) -> httpx.Response:
        last: UpstreamError | None = None
        for route in self.routes:
            try:
                response = await upstream.send(route, method, path, **build(route))
            except UpstreamError as exc:
                last = exc
                logger.warning("relay: %s failed for %s: %s", route.channel_name, self.gen_id, exc.message)
                await self._channel_failed(route, exc.message)
                continue
            self.route = route
            if self.snapshot is not None and self.snapshot.mark_ok(route.channel_id):
                await run_db(channel_succeeded, channel_id=route.channel_id)
            return response
        await self.release(f"no channel answered: {last.message if last else 'none tried'}")
        raise UpstreamUnavailable(_("The upstream for this model did not answer; nothing was charged. Try again shortly."))

    async def _channel_failed(self, route: Route, message: str) -> None:
        try:
            until = await run_db(channel_failed, channel_id=route.channel_id, error=message)
        except Exception:
            logger.exception("relay: could not record a failure of %s", route.channel_name)
            return
        if self.snapshot is not None:
            self.snapshot.mark_failed(route.channel_id, until)

    async def release(self, error: str) -> None:
        if self.closed or self.generation is None:
            return
        self.closed = True
        # Shielded: a cancelled request must not cancel its report while it waits for a database thread.
        await asyncio.shield(run_db(metering_report, gateway=await _gateway(), public_id=self.gen_id, outcome="failed", error=error))

    async def charge(self, usage: Usage, *, counted: bool = False) -> int:
        assert self.generation is not None
        cost = charge(self.generation.price_snapshot, usage, self.generation.rate)
        if not self.closed:
            self.closed = True
            await asyncio.shield(run_db(
                metering_report, gateway=await _gateway(), public_id=self.gen_id, outcome="succeeded",
                usage=usage, counted=counted,
            ))
        return cost

    async def passthrough(self, response: httpx.Response) -> Response:
        """An upstream 4xx: the client's request was refused upstream. Released, answered as the upstream said."""
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        await self.release(f"upstream HTTP {response.status_code}: {body[:300].decode('utf-8', 'replace')}")
        return Response(body, status_code=response.status_code, headers=self.headers(),
                        media_type=response.headers.get("content-type", "application/json"))

    async def read_json(self, response: httpx.Response) -> dict:
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            await self.release(f"upstream read failed: {type(exc).__name__}")
            raise UpstreamUnavailable(_("The upstream broke off its answer; nothing was charged. Try again.")) from None
        finally:
            await response.aclose()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            await self.release("upstream answered with something other than a JSON object")
            raise UpstreamUnavailable(_("The upstream gave an answer we could not read; nothing was charged.")) from None
        return data

    async def read_bytes(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            await self.release(f"upstream read failed: {type(exc).__name__}")
            raise UpstreamUnavailable(_("The upstream broke off its answer; nothing was charged. Try again.")) from None
        finally:
            await response.aclose()

    def answer(self, data: dict, cost: int, *, usage: Usage | None = None, with_id: bool = True) -> JSONResponse:
        if with_id:
            data["id"] = self.gen_id
        if "model" in data or with_id:
            data["model"] = self.model
        block = _dict(data.get("usage"))
        if usage is not None and not block:
            block = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                     "total_tokens": usage.input_tokens + usage.output_tokens}
        block["cost"] = _cost_number(cost)
        data["usage"] = block
        return JSONResponse(data, headers=self.headers(cost))


async def _guarded(call: Call, work: Callable[[], Awaitable[Response]]) -> Response:
    """Whatever escapes after the hold (a bug, a cancelled request) releases it: no hold waits for the sweeper."""
    try:
        return await work()
    except BaseException:
        if call.generation is not None and not call.closed:
            with suppress(Exception):
                await asyncio.shield(call.release("the relay stopped before answering"))
        raise


# --- chat completions (and streaming) ------------------------------------------------------------------


def _chat_output_tokens(choices: list) -> int:
    texts: list[str] = []
    for choice in choices or []:
        message = (choice or {}).get("message") or {}
        texts.append(str(message.get("content") or ""))
        texts.append(str(message.get("reasoning_content") or message.get("reasoning") or ""))
        for call in message.get("tool_calls") or []:
            texts.append(json.dumps(call, ensure_ascii=False))
    return text_tokens("".join(texts))


def chat_usage(data: dict, est: Estimate) -> tuple[Usage, bool]:
    """The upstream's usage, or (no usage given) the estimate's input and the counted output."""
    usage = data.get("usage")
    if isinstance(usage, dict) and _int(usage.get("prompt_tokens")) is not None:
        details = usage.get("prompt_tokens_details") or {}
        return _usage(_int(usage.get("prompt_tokens")) or 0, _int(usage.get("completion_tokens")) or 0,
                      _int(details.get("cached_tokens") if isinstance(details, dict) else 0) or 0), False
    return _usage(est.input_tokens, _chat_output_tokens(data.get("choices") or [])), True


@endpoint
async def chat_completions(request: Request) -> Response:
    call = Call(request, "chat/completions")
    body = await _json_body(request)
    await call.prepare(_model(body))
    est = estimate.chat(body)
    stream = bool(body.get("stream"))
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage")) if stream else False
    await call.hold(est)

    def build(route: Route) -> dict:
        forwarded = {**body, "model": route.upstream_model}
        if stream:
            forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return {"json": forwarded}

    async def work() -> Response:
        response = await call.forward("POST", "/chat/completions", build)
        if response.status_code >= 400:
            return await call.passthrough(response)
        if stream:
            return ChatStream(call, response, est, wants_usage)
        data = await call.read_json(response)
        usage, counted = chat_usage(data, est)
        cost = await call.charge(usage, counted=counted)
        return call.answer(data, cost, usage=usage)

    return await _guarded(call, work)


DONE = b"data: [DONE]\n\n"


class ChatStream(Response):
    """Server-sent events passed through as each event completes (no buffering beyond one event), with the
    `gen-` id and our model name, and the cost in the usage chunk. A client that goes away cancels the
    upstream request at once; what was produced is charged (upstream usage if it came, else counted)."""

    media_type = "text/event-stream"

    def __init__(self, call: Call, response: httpx.Response, est: Estimate, wants_usage: bool):
        self.call = call
        self.response = response
        self.est = est
        self.wants_usage = wants_usage
        self.usage: Usage | None = None
        self.ascii_chars = 0
        self.other_chars = 0
        self.text: list[str] = []
        self.disconnected = False
        self.broken = ""
        self.upstream_error = ""
        self.produced = False
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no"), (b"x-generation-id", call.gen_id.encode())]

    # parsing ------------------------------------------------------------------------------------

    def _count(self, text: str) -> None:
        if text:
            self.produced = True
            self.text.append(text)

    def _event(self, event: bytes) -> bytes | None:
        data_lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if not data_lines:
            return event + b"\n\n" if event.strip() else None  # comments and keep-alives pass through
        payload = b"\n".join(data_lines)
        if payload.strip() == b"[DONE]":
            return DONE
        try:
            obj = json.loads(payload)
        except ValueError:
            return event + b"\n\n"
        if not isinstance(obj, dict):
            return event + b"\n\n"
        if "error" in obj:
            self.upstream_error = json.dumps(obj["error"])[:300]
        obj["id"] = self.call.gen_id
        if "model" in obj:
            obj["model"] = self.call.model
        choices = obj.get("choices") or []
        for choice in choices:
            delta = (choice or {}).get("delta") or {}
            self._count(str(delta.get("content") or ""))
            self._count(str(delta.get("reasoning_content") or delta.get("reasoning") or ""))
            for tool_call in delta.get("tool_calls") or []:
                self._count(str(((tool_call or {}).get("function") or {}).get("arguments") or ""))
        usage = obj.get("usage")
        if isinstance(usage, dict) and _int(usage.get("prompt_tokens")) is not None:
            details = usage.get("prompt_tokens_details") or {}
            self.usage = _usage(_int(usage.get("prompt_tokens")) or 0, _int(usage.get("completion_tokens")) or 0,
                                _int(details.get("cached_tokens") if isinstance(details, dict) else 0) or 0)
            assert self.call.generation is not None
            usage["cost"] = _cost_number(charge(self.call.generation.price_snapshot, self.usage, self.call.generation.rate))
            if not self.wants_usage:
                if not choices:
                    return None  # the client did not ask for the usage chunk
                del obj["usage"]
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    async def events(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self.response.aiter_bytes():
            buffer += chunk.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[:end], buffer[end + 2:]
                out = self._event(event)
                if out == DONE:
                    await asyncio.shield(self._settle())  # reported before the client sees the end: a lookup right after finds it
                if out is not None:
                    yield out
        if buffer.strip():
            out = self._event(buffer)
            if out is not None:
                yield out

    # ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            try:
                async for out in self.events():
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            except httpx.HTTPError as exc:  # the upstream broke off mid-stream: say so, charge what came
                self.broken = type(exc).__name__
                error = {"error": {"type": "upstream_error", "code": "upstream_interrupted", "param": None,
                                   "message": _message(self.call.language,
                                                       _("The upstream broke off the stream; you are charged only for what was sent."))}}
                await send({"type": "http.response.body", "body": b"data: " + json.dumps(error).encode() + b"\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping = asyncio.ensure_future(pump())
        watching = asyncio.ensure_future(watch())
        try:
            done, _pending = await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
            if pumping not in done:
                self.disconnected = True
                pumping.cancel()
            watching.cancel()
            try:
                await pumping
            except (asyncio.CancelledError, OSError):
                self.disconnected = True
        finally:
            watching.cancel()
            # Report first (what was produced is known once the pump stopped), then close the upstream
            # response (which cancels the upstream request if still running), bounded: a close that
            # hangs on a broken connection must not keep the hold open.
            await asyncio.shield(self._settle())
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.response.aclose()), 5)

    async def _settle(self) -> None:
        if self.call.closed:
            return
        try:
            if self.usage is not None:
                await self.call.charge(self.usage)
            elif not self.produced and self.upstream_error:
                await self.call.release(f"upstream error in stream: {self.upstream_error}")
            else:
                counted = _usage(self.est.input_tokens, text_tokens("".join(self.text)))
                await self.call.charge(counted, counted=True)
        except Exception:
            logger.exception("relay: could not report stream %s; the sweeper will release its hold", self.call.gen_id)
        request_log.info(
            "stream %s closed (%s)", self.call.gen_id,
            "client disconnected" if self.disconnected else f"upstream broke: {self.broken}" if self.broken else "complete",
        )


# --- embeddings, images, audio, rerank -------------------------------------------------------------


@endpoint
async def embeddings(request: Request) -> Response:
    call = Call(request, "embeddings")
    body = await _json_body(request)
    await call.prepare(_model(body))
    est = estimate.embeddings(body)
    await call.hold(est)

    async def work() -> Response:
        response = await call.forward("POST", "/embeddings", lambda r: {"json": {**body, "model": r.upstream_model}})
        if response.status_code >= 400:
            return await call.passthrough(response)
        data = await call.read_json(response)
        usage = _dict(data.get("usage"))
        tokens = _int(usage.get("prompt_tokens"))
        if tokens is None:
            tokens = _int(usage.get("total_tokens"))
        measured = _usage(tokens if tokens is not None else est.input_tokens)
        cost = await call.charge(measured, counted=tokens is None)
        return call.answer(data, cost, usage=measured)

    return await _guarded(call, work)


@endpoint
async def image_generations(request: Request) -> Response:
    call = Call(request, "images/generations")
    body = await _json_body(request)
    info = await call.prepare(_model(body))
    est = estimate.images(body, unit=info.unit)
    await call.hold(est)

    async def work() -> Response:
        response = await call.forward("POST", "/images/generations", lambda r: {"json": {**body, "model": r.upstream_model}})
        if response.status_code >= 400:
            return await call.passthrough(response)
        data = await call.read_json(response)
        images = data["data"] if isinstance(data.get("data"), list) else []
        usage = _dict(data.get("usage"))
        input_tokens, output_tokens = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        measured = _usage(input_tokens if input_tokens is not None else est.input_tokens, output_tokens or 0, units=Decimal(len(images)))
        cost = await call.charge(measured, counted=info.billing_type == "per_token" and input_tokens is None)
        return call.answer(data, cost, usage=measured)

    return await _guarded(call, work)


@endpoint
async def audio_speech(request: Request) -> Response:
    call = Call(request, "audio/speech")
    body = await _json_body(request)
    info = await call.prepare(_model(body))
    est = estimate.speech(body, unit=info.unit)
    await call.hold(est)

    async def work() -> Response:
        response = await call.forward("POST", "/audio/speech", lambda r: {"json": {**body, "model": r.upstream_model}})
        if response.status_code >= 400:
            return await call.passthrough(response)
        audio = await call.read_bytes(response)
        # Speech is billed on what was sent (characters), as providers bill it.
        cost = await call.charge(_usage(est.input_tokens, units=est.units))
        return Response(audio, media_type=response.headers.get("content-type", "audio/mpeg"), headers=call.headers(cost))

    return await _guarded(call, work)


async def _form(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    _check_size(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(_("Send this request as multipart/form-data."), code="invalid_request")
    try:
        form = await request.form(max_files=4, max_fields=64)
    except Exception:
        raise InvalidRequest(_("The multipart body could not be read."), code="invalid_request") from None
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            files[name] = (value.filename or name, await value.read(), value.content_type or "application/octet-stream")
        else:
            fields[name] = str(value)
    await form.close()
    return fields, files


@endpoint
async def audio_transcriptions(request: Request) -> Response:
    call = Call(request, "audio/transcriptions")
    fields, files = await _form(request)
    info = await call.prepare(_model(fields))
    if "file" not in files:
        raise InvalidRequest(_("file is required."), code="invalid_request", param="file")
    est = estimate.transcription(files["file"][1], unit=info.unit)
    await call.hold(est)

    async def work() -> Response:
        response = await call.forward(
            "POST", "/audio/transcriptions",
            lambda r: {"data": {**fields, "model": r.upstream_model}, "files": [("file", files["file"])]},
        )
        if response.status_code >= 400:
            return await call.passthrough(response)
        raw = await call.read_bytes(response)
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        seconds = None
        usage_block = _dict(data.get("usage")) if isinstance(data, dict) else {}
        if usage_block.get("type") == "duration":
            seconds = _units(usage_block.get("seconds"))
        elif isinstance(data, dict) and data.get("duration") is not None:
            seconds = _units(data.get("duration"))
        input_tokens, output_tokens = _int(usage_block.get("input_tokens")), _int(usage_block.get("output_tokens"))
        units = estimate.duration_units(float(seconds), unit=info.unit) if seconds is not None else est.units
        measured = _usage(input_tokens if input_tokens is not None else est.input_tokens, output_tokens or 0, units=units)
        counted = seconds is None and input_tokens is None
        cost = await call.charge(measured, counted=counted)
        if isinstance(data, dict):
            return call.answer(data, cost, with_id=False)
        return Response(raw, media_type=response.headers.get("content-type", "text/plain"), headers=call.headers(cost))

    return await _guarded(call, work)


@endpoint
async def rerank(request: Request) -> Response:
    call = Call(request, "rerank")
    body = await _json_body(request)
    await call.prepare(_model(body))
    est = estimate.rerank(body)
    await call.hold(est)

    async def work() -> Response:
        response = await call.forward("POST", "/rerank", lambda r: {"json": {**body, "model": r.upstream_model}})
        if response.status_code >= 400:
            return await call.passthrough(response)
        data = await call.read_json(response)
        usage = _dict(data.get("usage"))
        tokens = _int(usage.get("total_tokens")) if usage else None
        measured = _usage(tokens if tokens is not None else est.input_tokens, units=Decimal(1))
        cost = await call.charge(measured, counted=tokens is None)
        return call.answer(data, cost, usage=measured)

    return await _guarded(call, work)


# --- models ------------------------------------------------------------------------------------------


@endpoint
async def models(request: Request) -> Response:
    token = await run_db(_token_for_listing, _bearer(request))
    snapshot = await current_snapshot()
    allowed = set(token.allowed_models or [])
    data = [
        {"id": info.name, "object": "model", "created": info.created, "owned_by": info.provider or "synstar",
         "category": info.category}
        for name, info in snapshot.models.items()
        if name in snapshot.routes and (not allowed or name in allowed)
    ]
    return JSONResponse({"object": "list", "data": data})


def _token_for_listing(raw_key: str):
    token = token_authenticate(raw_key=raw_key)
    if not token.is_enabled:
        raise AuthenticationFailed(_("This API token is disabled."), code="token_disabled")
    return token


# --- videos (a task: held at submission, settled when it finishes) ------------------------------------


@endpoint
async def video_create(request: Request) -> Response:
    call = Call(request, "videos")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        fields, files = await _form(request)
    else:
        fields, files = {k: str(v) for k, v in (await _json_body(request)).items()}, {}
    info = await call.prepare(_model(fields))
    est = estimate.video(fields, unit=info.unit)
    await call.hold(est, hold_seconds=settings.RELAY_TASK_HOLD_SECONDS)

    async def work() -> Response:
        response = await call.forward(
            "POST", "/videos",
            # Always multipart (as the videos API takes it): fields as parts without a file name.
            lambda r: {"files": [(k, (None, v)) for k, v in {**fields, "model": r.upstream_model}.items()] + list(files.items())},
        )
        if response.status_code >= 400:
            return await call.passthrough(response)
        data = await call.read_json(response)
        upstream_id = data.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            await call.release("upstream task without an id")
            raise UpstreamUnavailable(_("The upstream did not accept the task; nothing was charged."))
        assert call.route is not None and call.generation is not None
        await run_db(videos.relay_task_open, generation_id=call.generation.pk, channel_id=call.route.channel_id,
                     upstream_id=upstream_id, request={k: v for k, v in fields.items() if k != "model"}, answer=data)
        return JSONResponse(videos.video_object(call.gen_id, call.model, data, fields), headers=call.headers())

    return await _guarded(call, work)


@endpoint
async def video_retrieve(request: Request) -> Response:
    task = await run_db(videos.relay_task_for_token, raw_key=_bearer(request), public_id=request.path_params["video_id"])
    return JSONResponse(videos.task_object(task), headers={"X-Generation-Id": task.generation.public_id})


@endpoint
async def video_content(request: Request) -> Response:
    task = await run_db(videos.relay_task_for_token, raw_key=_bearer(request), public_id=request.path_params["video_id"])
    if task.status != task.Status.COMPLETED:
        raise NotFound(lazy_format(_("The video is %(status)s; its content is there once it is completed."), status=task.get_status_display().lower()),
                       code="video_not_ready")
    route = await run_db(videos.route_for_task, task)
    try:
        response = await upstream.send(route, "GET", f"/videos/{task.upstream_id}/content")
    except UpstreamError:
        raise UpstreamUnavailable(_("The upstream did not give the video's content; try again shortly.")) from None
    body = await response.aread()
    await response.aclose()
    if response.status_code >= 400:
        raise UpstreamUnavailable(_("The upstream did not give the video's content; try again shortly."))
    return Response(body, media_type=response.headers.get("content-type", "video/mp4"),
                    headers={"X-Generation-Id": task.generation.public_id})


# --- the application -------------------------------------------------------------------------------


ROUTES = [
    HttpRoute("/v1/chat/completions", chat_completions, methods=["POST"]),
    HttpRoute("/v1/embeddings", embeddings, methods=["POST"]),
    HttpRoute("/v1/images/generations", image_generations, methods=["POST"]),
    HttpRoute("/v1/audio/speech", audio_speech, methods=["POST"]),
    HttpRoute("/v1/audio/transcriptions", audio_transcriptions, methods=["POST"]),
    HttpRoute("/v1/rerank", rerank, methods=["POST"]),
    HttpRoute("/v1/models", models, methods=["GET"]),
    HttpRoute("/v1/videos", video_create, methods=["POST"]),
    HttpRoute("/v1/videos/{video_id}", video_retrieve, methods=["GET"]),
    HttpRoute("/v1/videos/{video_id}/content", video_content, methods=["GET"]),
]
RELAY_PATHS = frozenset(
    ["/v1/chat/completions", "/v1/embeddings", "/v1/images/generations", "/v1/audio/speech", "/v1/audio/transcriptions",
     "/v1/rerank", "/v1/models", "/v1/videos"]
)


def handles(path: str) -> bool:
    """Is this path the relay's (the rest of /v1/, like /v1/generation, is Django's)?"""
    path = path.rstrip("/") or "/"
    return path in RELAY_PATHS or path.startswith("/v1/videos/")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    upstream.client_start()
    try:
        yield
    finally:
        await upstream.client_stop()
        await asyncio.get_running_loop().run_in_executor(None, db_shutdown)


async def _not_found(request: Request, exc: Exception) -> Response:
    error = NotFound(lazy_format(_("No such endpoint: %(method)s %(path)s."), method=request.method, path=request.url.path), code="unknown_endpoint")
    return error_response(error, language=request_language(request))


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    error = InvalidRequest(lazy_format(_("%(method)s is not allowed on %(path)s."), method=request.method, path=request.url.path), code="method_not_allowed")
    error.status = 405
    return error_response(error, language=request_language(request))


def relay_application() -> Starlette:
    return Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={404: _not_found, 405: _method_not_allowed})
