"""`{% support_link %}`: the "contact support" link, a mailto: with the details support needs already filled in
(the order no., the account's email, the request id), and the optional help page. Set by SUPPORT_EMAIL and
SUPPORT_URL; with neither set it renders the label alone, as plain text."""

from urllib.parse import quote

from django import template
from django.conf import settings
from django.utils.translation import gettext as _

from synstar.logging import request_id_var

register = template.Library()


def support_details(*, user=None, order=None, request_id: str = "", path: str = "") -> str:
    lines = []
    if order is not None:
        lines.append(_("Order: %(order_no)s") % {"order_no": order.order_no})
        lines.append(_("Status: %(status)s") % {"status": order.get_status_display()})
    if user is not None and getattr(user, "is_authenticated", False):
        lines.append(_("Account: %(email)s") % {"email": user.email})
    if path:
        lines.append(_("Page: %(path)s") % {"path": path})
    if request_id and request_id != "-":
        lines.append(_("Request id: %(request_id)s") % {"request_id": request_id})
    return "\n".join(lines)


@register.inclusion_tag("console/_support_link.html", takes_context=True)
def support_link(context, label: str = "", subject: str = "", order=None):
    request = context.get("request")
    try:  # an error page must render even when the session or the database cannot be read
        user = context.get("user") or getattr(request, "user", None)
        user = user if user is not None and user.is_authenticated else None
    except Exception:
        user = None
    body = support_details(
        user=user, order=order, request_id=request_id_var.get(), path=request.get_full_path() if request is not None else ""
    )
    if not subject:
        subject = _("Help with order %(order_no)s") % {"order_no": order.order_no} if order is not None else _("Help with SynStar")
    mailto = ""
    if settings.SUPPORT_EMAIL:
        mailto = f"mailto:{settings.SUPPORT_EMAIL}?subject={quote(str(subject))}&body={quote(body + chr(10) + chr(10))}"
    return {"label": label or _("contact support"), "mailto": mailto, "email": settings.SUPPORT_EMAIL,
            "url": settings.SUPPORT_URL, "details": body}
