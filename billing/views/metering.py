"""Console page: usage records (and their CSV export)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from billing.apis.metering import usage_csv_response
from billing.forms import UsageFilterForm
from billing.selectors.catalog import price_display
from billing.selectors.metering import UsageFilters, generation_for_user, usage_records

PAGE_SIZE = 50


@login_required
def usage_page(request):
    form = UsageFilterForm(request.GET or None, user=request.user)
    filters = UsageFilters()
    if form.is_valid():
        d = form.cleaned_data
        filters = UsageFilters(
            token_id=d["token"].pk if d.get("token") else None,
            model=d.get("model") or None,
            state=d.get("state") or None,
            date_from=d.get("date_from"),
            date_to=d.get("date_to"),
        )
    if request.GET.get("format") == "csv":
        return usage_csv_response(_all_records(request.user, filters))
    try:
        before = int(request.GET.get("before") or 0) or None
    except ValueError:
        before = None
    rows = usage_records(user=request.user, filters=filters, before_id=before, limit=PAGE_SIZE + 1)
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "rows": rows[:PAGE_SIZE],
        "next_before": rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None,
        "is_first_page": before is None,
        "query": query.urlencode(),
    }
    return render(request, "console/usage.html", context)


def _all_records(user, filters):
    """Every matching record for CSV export, fetched in keyset pages so memory stays flat."""
    before = None
    while True:
        page = usage_records(user=user, filters=filters, before_id=before, limit=1000)
        yield from page
        if len(page) < 1000:
            return
        before = page[-1].pk


@login_required
def generation_page(request, public_id: str):
    """One request's billing detail (the generation lookup, as a page): the user's own only, else 404."""
    generation = generation_for_user(user=request.user, public_id=public_id)
    if generation is None:
        raise Http404("No such request.")
    context = {"g": generation, "price": price_display(generation.price_snapshot, generation.rate)}
    return render(request, "console/generation.html", context)
