"""The relay: the OpenAI-compatible API (DESIGN.md 10), in front of the metering.

Each request is authenticated by the user's `sk-` token, held (`billing.services.metering.metering_hold`),
forwarded to an upstream channel, reported with the usage the upstream gave (or the relay counted), and
answered with `id` = the `gen-...` id and `usage.cost`. Modules:

- `app`: the Starlette routes served in front of Django by `synstar.asgi` (no sync middleware on the hot path)
- `estimate`: what a request may consume (the hold's upper bound), from its body
- `channels`: which channel serves a model, channel health (out of rotation, probed back in)
- `upstream`: the one client module for upstreams (one pooled async HTTP client)
- `sandbox`: the local stand-in upstream of the quickstart
- `tasks`: task-based requests (video), polled by Celery until they finish
"""
