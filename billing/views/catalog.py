"""Console page: pricing."""

from django.shortcuts import render

from billing.selectors.catalog import pricing_table


def pricing_page(request):
    return render(request, "console/pricing.html", {"rows": pricing_table(user=request.user)})
