"""The ASGI application: the relay's routes (billing.relay.app) in front of Django (console, admin, API).

The relay answers its own paths without Django's middleware (a stream holds no worker and crosses no
sync middleware); everything else, including /v1/generation, is Django. Serve it with uvicorn:
`uvicorn synstar.asgi:application` (`make run` does).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synstar.settings")
django_application = get_asgi_application()

from billing.relay.app import handles, relay_application  # noqa: E402 - after Django is set up

relay = relay_application()


async def application(scope, receive, send):
    if scope["type"] == "lifespan" or (scope["type"] == "http" and handles(scope["path"])):
        return await relay(scope, receive, send)
    return await django_application(scope, receive, send)
