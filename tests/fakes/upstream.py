"""A local OpenAI-compatible upstream for the relay's tests and benchmark: real HTTP (uvicorn), real SSE,
controllable latency, errors, missing usage and disconnects. Usage figures are deterministic, so a test
knows exactly what the relay must charge.

`ServerThread` runs any ASGI app (this fake, or the relay itself) on a free local port in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field

import uvicorn

PROMPT_TOKENS = 21  # every chat request's prompt_tokens
EMBEDDING_TOKENS_PER_INPUT = 8
TRANSCRIPTION_SECONDS = 42.0
VIDEO_SECONDS = "8"


@dataclass
class Behaviour:
    status: int | None = None  # answer this HTTP status with an OpenAI error body
    delay: float = 0.0  # seconds before the first byte
    hang: bool = False  # never answer (a timeout)
    no_usage: bool = False  # leave usage out (non-streaming and streaming)
    words: int = 12  # words in a chat answer (completion_tokens = words)
    chunk_delay: float = 0.0  # seconds between streamed chunks
    error_in_stream: bool = False  # a stream that sends an error event and nothing else
    video_polls_until_done: int = 2  # GET /videos/{id} answers in_progress this many times, then completed
    video_fails: bool = False


@dataclass
class FakeUpstream:
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list = field(default_factory=list)  # (path, body-or-None, authorization)
    streams_started: int = 0
    streams_finished: int = 0
    streams_cancelled: int = 0  # the relay went away mid-stream
    video_polls: dict = field(default_factory=dict)
    record: bool = True  # keep every request (tests); the benchmark turns it off

    def reset(self, **behaviour) -> None:
        self.behaviour = Behaviour(**behaviour)
        self.requests.clear()
        self.streams_started = self.streams_finished = self.streams_cancelled = 0
        self.video_polls.clear()

    # ASGI -------------------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        path = scope["path"].removeprefix("/v1")
        b = self.behaviour
        content_type = headers.get(b"content-type", b"").decode()
        parsed = None
        if content_type.startswith("application/json") and body:
            parsed = json.loads(body)
        if self.record:
            self.requests.append((path, parsed if parsed is not None else body, headers.get(b"authorization", b"").decode()))
        if b.hang:
            await asyncio.sleep(3600)
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status:
            return await self._json(send, b.status, {"error": {"message": f"fake upstream says {b.status}", "type": "upstream", "code": None}})
        if path == "/chat/completions":
            if parsed.get("stream"):
                return await self._stream(receive, send, parsed)
            text = " ".join(f"word{i}" for i in range(b.words))
            answer = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": parsed["model"],
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
            if not b.no_usage:
                answer["usage"] = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": b.words, "total_tokens": PROMPT_TOKENS + b.words}
            return await self._json(send, 200, answer)
        if path == "/embeddings":
            inputs = parsed["input"] if isinstance(parsed["input"], list) else [parsed["input"]]
            answer = {"object": "list", "model": parsed["model"],
                      "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(inputs))]}
            if not b.no_usage:
                n = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
                answer["usage"] = {"prompt_tokens": n, "total_tokens": n}
            return await self._json(send, 200, answer)
        if path == "/images/generations":
            n = parsed.get("n") or 1
            return await self._json(send, 200, {"created": 1, "data": [{"b64_json": "aW1hZ2U="} for _ in range(n)]})
        if path == "/audio/speech":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"audio/mpeg")]})
            await send({"type": "http.response.body", "body": b"ID3fake-mp3-bytes"})
            return
        if path == "/audio/transcriptions":
            answer = {"text": "hello from the fake upstream"}
            if not b.no_usage:
                answer["usage"] = {"type": "duration", "seconds": TRANSCRIPTION_SECONDS}
            return await self._json(send, 200, answer)
        if path == "/rerank":
            docs = parsed["documents"]
            return await self._json(send, 200, {"id": "rr", "results": [{"index": i, "relevance_score": 1 / (i + 1)} for i in range(len(docs))]})
        if path == "/videos" and scope["method"] == "POST":
            return await self._json(send, 200, {"id": f"video_fake_{len(self.requests)}", "object": "video", "status": "queued",
                                                "progress": 0, "seconds": VIDEO_SECONDS, "size": "720x1280", "created_at": 1, "model": "x"})
        if path.startswith("/videos/") and path.endswith("/content"):
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"video/mp4")]})
            await send({"type": "http.response.body", "body": b"fake-mp4"})
            return
        if path.startswith("/videos/"):
            video_id = path.split("/")[2]
            polls = self.video_polls[video_id] = self.video_polls.get(video_id, 0) + 1
            if b.video_fails:
                status = {"status": "failed", "error": {"code": "moderation", "message": "the fake upstream refused it"}}
            elif polls > b.video_polls_until_done:
                status = {"status": "completed", "progress": 100}
            else:
                status = {"status": "in_progress", "progress": 50}
            return await self._json(send, 200, {"id": video_id, "object": "video", "seconds": VIDEO_SECONDS, "size": "720x1280",
                                                "created_at": 1, "model": "x", **status})
        if path == "/models":
            return await self._json(send, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        return await self._json(send, 404, {"error": {"message": "no such path", "type": "invalid_request_error", "code": None}})

    async def _json(self, send, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]})
        await send({"type": "http.response.body", "body": raw})

    async def _stream(self, receive, send, parsed: dict) -> None:
        b = self.behaviour
        self.streams_started += 1
        gone = asyncio.Event()

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

        async def event(payload) -> bool:
            if gone.is_set():
                return False
            await send({"type": "http.response.body", "body": b"data: " + json.dumps(payload).encode() + b"\n\n", "more_body": True})
            return True

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": parsed["model"]}
        try:
            if b.error_in_stream:
                await event({"error": {"message": "fake upstream broke", "type": "server_error"}})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                self.streams_finished += 1
                return
            await event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
            for i in range(b.words):
                if b.chunk_delay:
                    try:
                        await asyncio.wait_for(gone.wait(), b.chunk_delay)
                    except TimeoutError:
                        pass
                if not await event({**base, "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]}):
                    self.streams_cancelled += 1
                    return
            await event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if (parsed.get("stream_options") or {}).get("include_usage") and not b.no_usage:
                await event({**base, "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": b.words,
                                                              "total_tokens": PROMPT_TOKENS + b.words}})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            self.streams_finished += 1
        finally:
            watcher.cancel()


def app_from_env() -> FakeUpstream:
    """The benchmark's upstream process: `uvicorn --factory tests.fakes.upstream:app_from_env`, shaped by
    FAKE_DELAY_MS (before the first byte), FAKE_WORDS and FAKE_CHUNK_DELAY_MS (between streamed words)."""
    return FakeUpstream(
        behaviour=Behaviour(delay=float(os.environ.get("FAKE_DELAY_MS", "0")) / 1000, words=int(os.environ.get("FAKE_WORDS", "12")),
                            chunk_delay=float(os.environ.get("FAKE_CHUNK_DELAY_MS", "0")) / 1000),
        record=False,
    )


class ServerThread:
    """An ASGI app on 127.0.0.1 at a free port, served by uvicorn in a thread."""

    def __init__(self, app, *, lifespan: str = "on", keep_alive: int = 5):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan,
                                                    timeout_graceful_shutdown=3, timeout_keep_alive=keep_alive))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
