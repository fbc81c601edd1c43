import csv
from datetime import date

from django import forms
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from synstar.money import format_usd
from wallet.selectors.history import DAILY, KIND_FILTERS, PER_REQUEST, HistoryFilters, balance_history
from wallet.selectors.ledger import wallet_activity, wallet_statistics

HISTORY_PAGE_SIZE = 50
CSV_PAGE_SIZE = 1000
CURSOR_SALT = "wallet.history.cursor"


@login_required
def dashboard(request):
    context: dict[str, object] = {"stats": wallet_statistics(user=request.user)}
    if request.htmx:
        return render(request, "console/_stats.html", context)
    context["activity"] = wallet_activity(user=request.user, limit=10)
    return render(request, "console/dashboard.html", context)


class HistoryFilterForm(forms.Form):
    view = forms.ChoiceField(
        choices=[(DAILY, _("Usage per day")), (PER_REQUEST, _("Usage per request"))], required=False, label=_("Show")
    )
    kind = forms.ChoiceField(
        choices=[("", _("All kinds"))] + [(key, label) for key, (label, _kinds) in KIND_FILTERS.items()],
        required=False, label=_("Kind"),
    )
    date_from = forms.DateField(required=False, label=_("From (UTC)"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label=_("To (UTC)"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean() or {}
        for field in ("date_from", "date_to"):
            if data.get(field) and not (date(2000, 1, 1) <= data[field] <= date(9000, 12, 31)):
                self.add_error(field, _("Enter a date between 2000-01-01 and 9000-12-31."))
                data.pop(field, None)
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", _("The end date must be on or after the start date."))
        return data

    def filters(self) -> HistoryFilters:
        d = self.cleaned_data
        return HistoryFilters(mode=d.get("view") or DAILY, kind=d.get("kind") or None, day_from=d.get("date_from"),
                              day_to=d.get("date_to"))


class BadCursor(Exception):
    pass


def _cursor_dump(user, filters: HistoryFilters, cursor: dict) -> str:
    return signing.dumps({"u": user.pk, "f": filters.fingerprint(), "c": cursor}, salt=CURSOR_SALT, compress=True)


def _cursor_load(user, filters: HistoryFilters, raw: str) -> dict:
    try:
        data = signing.loads(raw, salt=CURSOR_SALT)
    except signing.BadSignature:
        raise BadCursor from None
    if data.get("u") != user.pk or data.get("f") != filters.fingerprint():
        raise BadCursor
    return data["c"]


@login_required
def balance_history_page(request):
    """Every posting of the user's balance with the balance after it; filters, pages, CSV."""
    form = HistoryFilterForm(request.GET or None)
    filters = HistoryFilters()
    status = 200
    if request.GET and not form.is_valid():
        status = 400
    elif form.is_bound:
        filters = form.filters()
    cursor = None
    raw_cursor = request.GET.get("after", "")
    if raw_cursor and status == 200:
        try:
            cursor = _cursor_load(request.user, filters, raw_cursor)
        except BadCursor:
            status = 400
            form.add_error(None, _("This page link is out of date. Start again from the newest entries."))
    if request.GET.get("format") == "csv" and status == 200:
        return _history_csv(request.user, filters)
    page = balance_history(user=request.user, filters=filters, cursor=cursor, limit=HISTORY_PAGE_SIZE) if status == 200 else None
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("format", None)
    context = {
        "form": form,
        "filters": filters,
        "page": page,
        "rows": page.rows if page else [],
        "next_cursor": _cursor_dump(request.user, filters, page.next_cursor) if page and page.next_cursor else None,
        "is_first_page": cursor is None,
        "query": query.urlencode(),
    }
    return render(request, "console/history.html", context, status=status)


def _history_csv(user, filters: HistoryFilters) -> StreamingHttpResponse:
    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())

    def generate():
        yield writer.writerow(["time_utc", "day_utc", "kind", "type", "detail", "requests", "amount_usd", "balance_after_usd"])
        cursor = None
        while True:
            page = balance_history(user=user, filters=filters, cursor=cursor, limit=CSV_PAGE_SIZE)
            for row in page.rows:
                yield writer.writerow([
                    row.at.isoformat() if row.at else "", row.day.isoformat(), row.kind, row.label, row.detail,
                    "" if row.requests is None else row.requests, format_usd(row.amount, places=None),
                    format_usd(row.balance_after, places=None),
                ])
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    response = StreamingHttpResponse(generate(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="balance-history.csv"'
    return response
