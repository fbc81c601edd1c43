"""Shell views: health, and error pages that answer JSON to API clients in the one error shape."""

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.utils.translation import gettext_lazy as _

from synstar.errors import NotFound, SynstarError, json_error
from synstar.i18n import lazy_format

API_PREFIXES = ("/api/", "/v1/", "/webhooks/")


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG icon."""
    response = HttpResponseRedirect(static("console/favicon.svg"))
    response["Cache-Control"] = "public, max-age=86400"
    return response


def not_found(request, exception=None):
    if request.path.startswith(API_PREFIXES):
        return json_error(NotFound(lazy_format(_("No such endpoint: %(path)s"), path=request.path)))
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith(API_PREFIXES):
        error = SynstarError(_("Something went wrong on our side; it has been logged."), code="internal_error")
        error.status, error.type = 500, "api_error"
        return json_error(error)
    return render(request, "500.html", status=500)
