"""The sandbox channel: an OpenAI-compatible upstream that answers inside the relay process, for the
quickstart (no keys, no network). Its answers are deterministic and labelled as the sandbox's; they
carry usage like a real upstream, so holds, reports and charges run exactly as they would for real.

It is an `httpx` transport, so the relay reaches it through the same client code as any channel.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
from collections.abc import AsyncIterator

import httpx

from billing.relay.estimate import audio_seconds, text_tokens

LABEL = "[SynStar sandbox]"
CHUNK_DELAY_SECONDS = 0.01
# A 1x1 PNG: what the sandbox "generates" as an image.
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _json(status: int, payload: dict) -> httpx.Response:
    return httpx.Response(status, json=payload)


def _last_user_text(messages: list) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _answer(model: str, messages: list, max_tokens: int | None) -> str:
    said = " ".join(_last_user_text(messages).split())[:200]
    words = f"{LABEL} This is a sandbox answer from {model}: no upstream was called. You said: {said}".split(" ")
    if max_tokens:
        words = words[: max(1, max_tokens)]
    return " ".join(words)


def _prompt_tokens(messages: list) -> int:
    return sum(4 + text_tokens(json.dumps(m.get("content"), ensure_ascii=False)) for m in messages if isinstance(m, dict))


async def _sse(model: str, text: str, prompt_tokens: int, include_usage: bool) -> AsyncIterator[bytes]:
    chat_id = "chatcmpl-sbx" + hashlib.sha256(text.encode()).hexdigest()[:12]
    created = int(time.time())

    def event(payload: dict) -> bytes:
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    base = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model}
    yield event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for i, word in enumerate(text.split(" ")):
        await asyncio.sleep(CHUNK_DELAY_SECONDS)
        piece = word if i == 0 else " " + word
        yield event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    yield event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        completion = text_tokens(text)
        yield event({**base, "choices": [], "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}})
    yield b"data: [DONE]\n\n"


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]):
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        await self._chunks.aclose()  # type: ignore[attr-defined]


def _vector(text: str, dims: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128, 6) for b in digest[:dims]]


def _silence_wav(seconds: float, rate: int = 8000) -> bytes:
    frames = int(seconds * rate)
    header = b"RIFF" + struct.pack("<I", 36 + frames) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    return header + b"data" + struct.pack("<I", frames) + b"\x80" * frames


class SandboxTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = await request.aread()
        if request.method == "GET" and path == "/models":
            return _json(200, {"object": "list", "data": []})
        if request.method == "GET" and path.startswith("/videos/"):
            return self._video(path)
        if path == "/audio/transcriptions":
            start = body.find(b"RIFF")
            seconds = audio_seconds(body[start:]) if start >= 0 else None
            seconds = round(seconds if seconds is not None else len(body) / 2000, 3)
            return _json(200, {"text": f"{LABEL} transcription of {seconds} s of audio.", "usage": {"type": "duration", "seconds": seconds}})
        if path == "/videos":
            return self._video_create(body, request.headers.get("content-type", ""))
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": {"message": "Invalid JSON.", "type": "invalid_request_error", "code": None}})
        model = str(data.get("model", ""))
        if path == "/chat/completions":
            messages = data.get("messages") or []
            max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
            text = _answer(model, messages, max_tokens)
            prompt = _prompt_tokens(messages)
            if data.get("stream"):
                include = bool((data.get("stream_options") or {}).get("include_usage"))
                return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(_sse(model, text, prompt, include)))
            completion = text_tokens(text)
            return _json(200, {
                "id": "chatcmpl-sbx", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            })
        if path == "/embeddings":
            inputs = data.get("input")
            items = [inputs] if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)) else list(inputs or [])
            tokens = sum(text_tokens(i) if isinstance(i, str) else len(i) for i in items)
            return _json(200, {
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": n, "embedding": _vector(json.dumps(i))} for n, i in enumerate(items)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })
        if path == "/images/generations":
            n = int(data.get("n") or 1)
            return _json(200, {"created": int(time.time()), "data": [
                {"b64_json": base64.b64encode(PNG_1PX).decode(), "revised_prompt": f"{LABEL} {data.get('prompt', '')}"[:300]}
                for _ in range(n)]})
        if path == "/audio/speech":
            return httpx.Response(200, headers={"content-type": "audio/wav"}, content=_silence_wav(0.5))
        if path == "/rerank":
            query = set(str(data.get("query", "")).lower().split())
            docs = data.get("documents") or []
            scored = []
            for i, doc in enumerate(docs):
                text = doc if isinstance(doc, str) else str((doc or {}).get("text", ""))
                words = set(text.lower().split())
                scored.append({"index": i, "relevance_score": round(len(query & words) / (len(query) or 1), 6)})
            scored.sort(key=lambda r: -r["relevance_score"])
            top_n = data.get("top_n") or len(scored)
            return _json(200, {"id": "rerank-sbx", "results": scored[:top_n], "meta": {"billed_units": {"search_units": 1}}})
        return _json(404, {"error": {"message": f"The sandbox does not serve {path}.", "type": "invalid_request_error", "code": "not_found"}})

    def _video_create(self, body: bytes, content_type: str) -> httpx.Response:
        seconds = "4"
        marker = b'name="seconds"'
        at = body.find(marker)
        if at >= 0:
            value = body[at + len(marker):].split(b"\r\n\r\n", 1)[-1].split(b"\r\n", 1)[0].strip()
            seconds = value.decode() or "4"
        video_id = f"video_sbx_{seconds}_{hashlib.sha256(body).hexdigest()[:10]}"
        return _json(200, {"id": video_id, "object": "video", "status": "queued", "progress": 0, "seconds": seconds,
                           "size": "720x1280", "created_at": int(time.time()), "model": "sandbox"})

    def _video(self, path: str) -> httpx.Response:
        parts = path.strip("/").split("/")
        video_id = parts[1]
        if len(parts) == 3 and parts[2] == "content":
            return httpx.Response(200, headers={"content-type": "video/mp4"}, content=f"{LABEL} video {video_id}".encode())
        seconds = video_id.split("_")[2] if video_id.count("_") >= 3 else "4"
        return _json(200, {"id": video_id, "object": "video", "status": "completed", "progress": 100, "seconds": seconds,
                           "size": "720x1280", "created_at": int(time.time()), "completed_at": int(time.time()), "model": "sandbox"})
