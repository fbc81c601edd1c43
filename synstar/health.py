"""The broker check for /health/ (django-health-check covers the database and the cache)."""

import dataclasses

from django.http import JsonResponse
from health_check.backends import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from synstar.celery import app


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (Redis in production; the embedded one in the quickstart)."""

    timeout: float = 2.0

    def check_status(self):
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            self.add_error(ServiceUnavailable("The task broker is unreachable."), exc)


class HealthView(HealthCheckView):
    """/health/: 200 when every check passes, 500 otherwise; the body names each check and says OK or
    unavailable. The reason (which can name hosts and databases) goes to the log only, never to this
    unauthenticated page."""

    checks = ("health_check.Database", "health_check.Cache", "synstar.health.Broker")

    def get(self, request, *args, **kwargs):
        failed = self.check(None)
        plugins = self.filter_plugins(subset=None)
        return self.render_to_response_json(plugins, 500 if failed else 200)

    def render_to_response_json(self, plugins, status):
        return JsonResponse({label.split("(")[0]: "unavailable" if p.errors else "OK" for label, p in plugins.items()},
                            status=status, headers={"Cache-Control": "no-store"})
