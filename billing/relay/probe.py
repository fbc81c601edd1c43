"""Beat: probe channels whose time out of rotation has passed, and put back the ones that answer."""

from __future__ import annotations

import asyncio

from billing.relay import upstream
from billing.relay.channels import Route, channel_failed, channel_succeeded, channels_due_for_probe


def channels_probe() -> dict[str, int]:
    routes = channels_due_for_probe()
    if not routes:
        return {"restored": 0, "failed": 0}
    results = upstream.run_sync(_probe_all(routes))
    restored = failed = 0
    for route, problem in results:
        if problem is None:
            channel_succeeded(channel_id=route.channel_id, how="The probe (GET /models) succeeded")
            restored += 1
        else:
            channel_failed(channel_id=route.channel_id, error=f"probe: {problem}")
            failed += 1
    return {"restored": restored, "failed": failed}


async def _probe_all(routes: list[Route]) -> list[tuple[Route, str | None]]:
    async with upstream.standalone_client() as clients:
        problems = await asyncio.gather(*(upstream.probe(route, clients) for route in routes))
    return list(zip(routes, problems))
