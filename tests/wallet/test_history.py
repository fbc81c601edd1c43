"""The balance history page: every posting with the balance after it, exact across pages, views and
filters; usage one row per day (from the rollup) or per request; CSV export; nothing internal shown."""

import csv
import io
import re
from datetime import UTC, timedelta
from unittest import mock
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synstar.money import format_usd, usd
from tests.factories import fund, make_user
from tests.metering import meter_hold, meter_release, meter_settle
from wallet.models import Entry
from wallet.selectors.history import KIND_FILTERS, HistoryFilters, balance_history
from wallet.services.ledger import adjustment_create, main_account

pytestmark = pytest.mark.django_db

DAYS = 4


def clock(days: int):
    real = timezone.now
    return mock.patch("django.utils.timezone.now", lambda: real() - timedelta(days=days))


@pytest.fixture
def history_user(settings):
    """A user with postings of several kinds over four days, usage charges between them."""
    settings.METERING_MIN_HOLD_USD = "0"
    user = make_user(balance="20")
    staff = make_user(is_staff=True, email="operator@synstar.example")
    for days_ago in range(DAYS, -1, -1):
        with clock(days_ago):
            for i in range(3):
                meter_settle(meter_hold(user, usd("0.05")), usd("0.01") * (i + 1) + days_ago)
            fund(user, "1.25")
            meter_release(meter_hold(user, usd("0.02")))
            if days_ago % 2 == 0:
                adjustment_create(user=user, amount=-usd("0.10") if days_ago else usd("0.30"), reason="internal: ticket 42",
                                  user_reason=f"Goodwill credit day {days_ago}", actor=staff,
                                  idempotency_key=f"adj-{days_ago}")
            meter_settle(meter_hold(user, usd("0.02")), usd("0.015"))
    return user


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr("wallet.views.ledger.HISTORY_PAGE_SIZE", 3)


def entries(user):
    account = main_account(user=user)
    return list(Entry.objects.filter(account=account).select_related("transaction").order_by("id"))


def expected_daily_balance(user, row):
    """Independent replay: the balance after a daily row is every entry up to it in (day, postings before
    that day's usage, time, id) order."""
    def key(e):
        at = e.transaction.created_at
        return (at.astimezone(UTC).date(), 1 if e.transaction.kind == "settlement" else 0, at, e.pk)

    if row.is_usage_day:
        return sum(e.amount for e in entries(user) if e.transaction.created_at.astimezone(UTC).date() <= row.day)
    mine = next(e for e in entries(user) if e.pk == row.entry_id)
    return sum(e.amount for e in entries(user) if key(e) <= key(mine))


def expected_per_request_balance(user, row, day_from=None, day_to=None):
    """Independent replay: entries in id order within the date range; those before or after the range
    count as before or after it (ids need not follow time: the fixtures post into the past)."""
    def key(e):
        day = e.transaction.created_at.astimezone(UTC).date()
        return (0 if day_from and day < day_from else 2 if day_to and day > day_to else 1, e.pk)

    mine = next(e for e in entries(user) if e.pk == row.entry_id)
    return sum(e.amount for e in entries(user) if key(e) <= key(mine))


def walk(user, filters, limit):
    rows, cursor, pages = [], None, 0
    while True:
        page = balance_history(user=user, filters=filters, cursor=cursor, limit=limit)
        rows += page.rows
        pages += 1
        if page.next_cursor is None:
            return rows, pages
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 5, 50])
@pytest.mark.parametrize("kind", [None, *KIND_FILTERS])
def test_daily_balance_after_is_exact_across_pages_and_filters(history_user, limit, kind):
    user = history_user
    today = timezone.now().astimezone(UTC).date()
    for day_from, day_to in [(None, None), (today - timedelta(days=3), today - timedelta(days=1)), (None, today - timedelta(days=2))]:
        rows, _ = walk(user, HistoryFilters(kind=kind, day_from=day_from, day_to=day_to), limit)
        for row in rows:
            assert row.balance_after == expected_daily_balance(user, row), row
            assert (day_from or row.day) <= row.day <= (day_to or row.day)
            if kind:
                assert row.kind in KIND_FILTERS[kind][1]
        # Every matching posting is there once; each day of usage is one row with that day's charges.
        usage_days = [r for r in rows if r.is_usage_day]
        assert len({r.day for r in usage_days}) == len(usage_days)
        for r in usage_days:
            day_entries = [e for e in entries(user) if e.transaction.kind == "settlement"
                           and e.transaction.created_at.astimezone(UTC).date() == r.day]
            assert r.amount == sum(e.amount for e in day_entries) and r.requests == len(day_entries)
        in_range = [e for e in entries(user) if e.transaction.kind != "settlement"
                    and (day_from is None or e.transaction.created_at.astimezone(UTC).date() >= day_from)
                    and (day_to is None or e.transaction.created_at.astimezone(UTC).date() <= day_to)
                    and (kind is None or e.transaction.kind in KIND_FILTERS[kind][1])]
        assert sorted(r.entry_id for r in rows if not r.is_usage_day) == [e.pk for e in in_range]
    if kind in (None, "usage"):
        assert any(r.is_usage_day for r in walk(user, HistoryFilters(kind=kind), limit)[0])


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
@pytest.mark.parametrize("kind", [None, "usage"])
def test_per_request_balance_after_is_exact_across_pages_and_filters(history_user, limit, kind):
    user = history_user
    today = timezone.now().astimezone(UTC).date()
    for day_from, day_to in [(None, None), (today - timedelta(days=2), today - timedelta(days=1)), (None, today - timedelta(days=3))]:
        rows, _ = walk(user, HistoryFilters(mode="request", kind=kind, day_from=day_from, day_to=day_to), limit)
        expected = [e for e in reversed(entries(user))
                    if (kind is None or e.transaction.kind == "settlement")
                    and (day_from is None or e.transaction.created_at.astimezone(UTC).date() >= day_from)
                    and (day_to is None or e.transaction.created_at.astimezone(UTC).date() <= day_to)]
        assert [r.entry_id for r in rows] == [e.pk for e in expected]
        for row in rows:
            assert row.balance_after == expected_per_request_balance(user, row, day_from, day_to)


def test_newest_row_shows_the_current_balance_and_history_ends_at_zero(history_user):
    rows, _ = walk(history_user, HistoryFilters(), 50)
    assert rows[0].balance_after == main_account(user=history_user).balance
    last = rows[-1]
    assert last.balance_after - last.amount == 0  # before the very first posting there was nothing
    per_request, _ = walk(history_user, HistoryFilters(mode="request"), 4)
    assert per_request[0].balance_after == main_account(user=history_user).balance
    assert len(per_request) == len(entries(history_user))


def test_page_shows_user_reason_never_operator_or_internal_reason(client, history_user):
    client.force_login(history_user)
    response = client.get(reverse("console:history"), {"kind": "adjustment"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Goodwill credit day 0" in body and "Goodwill credit day 2" in body
    assert "operator@synstar.example" not in body and "ticket 42" not in body
    dashboard = client.get(reverse("console:dashboard")).content.decode()
    assert reverse("console:history") in dashboard
    assert "operator@synstar.example" not in dashboard


def test_page_walks_every_page_by_its_links(client, history_user, small_pages):
    client.force_login(history_user)
    url = reverse("console:history") + "?kind=&view=daily"
    seen, pages = [], 0
    for _ in range(50):
        body = client.get(url).content.decode()
        seen += [int(n) for n in re.findall(r'data-nanos="(-?\d+)"', body)]
        pages += 1
        older = re.search(r'data-testid="history-older" href="([^"]+)"', body)
        if not older:
            break
        url = reverse("console:history") + older.group(1).replace("&amp;", "&")
    rows, _ = walk(history_user, HistoryFilters(), 50)
    assert seen == [r.balance_after for r in rows]
    assert pages > 3


def test_usage_day_links_to_that_day_per_request(client, history_user):
    client.force_login(history_user)
    body = client.get(reverse("console:history"), {"kind": "usage"}).content.decode()
    day = timezone.now().astimezone(UTC).date().isoformat()
    assert f"view=request&amp;kind=usage&amp;date_from={day}&amp;date_to={day}" in body
    per_request = client.get(reverse("console:history"), {"view": "request", "kind": "usage", "date_from": day, "date_to": day})
    assert per_request.status_code == 200
    assert per_request.content.decode().count('data-kind="settlement"') == 4


def test_csv_export_streams_every_row_with_balances(client, history_user):
    client.force_login(history_user)
    for params, filters in [({}, HistoryFilters()), ({"view": "request"}, HistoryFilters(mode="request")),
                            ({"kind": "topup"}, HistoryFilters(kind="topup"))]:
        response = client.get(reverse("console:history"), {**params, "format": "csv"})
        assert response.status_code == 200 and response.streaming
        assert response["Content-Type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert table[0][-2:] == ["amount_usd", "balance_after_usd"]
        rows, _ = walk(history_user, filters, 1000)
        assert [r[-1] for r in table[1:]] == [format_usd(r.balance_after, places=None) for r in rows]
        assert [r[-2] for r in table[1:]] == [format_usd(r.amount, places=None) for r in rows]


def test_bad_filters_and_cursors_are_400_and_show_nothing_wrong(client, history_user, small_pages):
    client.force_login(history_user)
    url = reverse("console:history")
    assert client.get(url, {"date_from": "2026-13-45"}).status_code == 400
    assert client.get(url, {"date_from": "2026-05-02", "date_to": "2026-05-01"}).status_code == 400
    assert client.get(url, {"kind": "bogus"}).status_code == 400
    for edge in ("9999-12-31", "0001-01-01"):  # dates a day cannot be added to or taken from: 400, not 500
        for view in ("", "request"):
            assert client.get(url, {"date_to": edge, "view": view}).status_code == 400
            assert client.get(url, {"date_from": edge, "view": view}).status_code == 400
    assert client.get(url, {"after": "forged"}).status_code == 400
    # A cursor made for other filters is refused, not misread.
    body = client.get(url).content.decode()
    cursor = unquote(re.search(r'after=([^"&]+)', body).group(1))
    assert client.get(url, {"after": cursor}).status_code == 200
    assert client.get(url, {"kind": "topup", "after": cursor}).status_code == 400
    assert client.get(url, {"after": cursor[:-2] + "xx"}).status_code == 400


def test_another_users_cursor_is_refused(client, history_user, small_pages):
    client.force_login(history_user)
    body = client.get(reverse("console:history")).content.decode()
    cursor = re.search(r'after=([^"&]+)', body).group(1)
    other = make_user(balance="1")
    client.force_login(other)
    assert client.get(reverse("console:history"), {"after": unquote(cursor)}).status_code == 400


def test_query_count_is_constant(client, django_assert_max_num_queries, history_user):
    client.force_login(history_user)
    counts = []
    for params in [{}, {"view": "request"}, {"kind": "usage"}, {"date_to": timezone.now().date().isoformat()}]:
        with CaptureQueriesContext(connection) as q:
            assert client.get(reverse("console:history"), params).status_code == 200
        counts.append(len(q.captured_queries))
    for days_ago in range(3):
        with clock(days_ago):
            for _ in range(5):
                meter_settle(meter_hold(history_user, usd("0.02")), usd("0.01"))
    for i, params in enumerate([{}, {"view": "request"}, {"kind": "usage"}, {"date_to": timezone.now().date().isoformat()}]):
        with CaptureQueriesContext(connection) as q:
            client.get(reverse("console:history"), params)
        assert len(q.captured_queries) == counts[i]


op_st = st.fixed_dictionaries({
    "op": st.sampled_from(["usage", "usage", "usage", "fund", "adjust", "release"]),
    "days_ago": st.integers(0, 5),
    "cents": st.integers(1, 90),
})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(op_st, min_size=1, max_size=14), limit=st.integers(1, 6),
       mode=st.sampled_from(["daily", "request"]), kind=st.sampled_from([None, "usage", "grant", "adjustment"]),
       window=st.tuples(st.one_of(st.none(), st.integers(0, 5)), st.one_of(st.none(), st.integers(0, 5))))
def test_balance_after_is_exact_for_any_history(settings, ops, limit, mode, kind, window):
    settings.METERING_MIN_HOLD_USD = "0"
    user = make_user(balance="5")
    staff = make_user(is_staff=True)
    for n, op in enumerate(ops):
        with clock(op["days_ago"]):
            amount = op["cents"] * usd("0.01")
            if op["op"] == "usage":
                meter_settle(meter_hold(user, amount), amount)
            elif op["op"] == "fund":
                fund(user, "0.75")
            elif op["op"] == "adjust":
                adjustment_create(user=user, amount=amount, reason="r", user_reason="why", actor=staff,
                                  idempotency_key=f"hyp-{user.pk}-{n}")
            else:
                meter_release(meter_hold(user, amount))
    today = timezone.now().astimezone(UTC).date()
    start, end = window
    day_from = today - timedelta(days=start) if start is not None else None
    day_to = today - timedelta(days=end) if end is not None else None
    if day_from and day_to and day_from > day_to:
        day_from, day_to = day_to, day_from
    filters = HistoryFilters(mode=mode, kind=kind, day_from=day_from, day_to=day_to)
    rows, _ = walk(user, filters, limit)
    for row in rows:
        if filters.per_request:
            assert row.balance_after == expected_per_request_balance(user, row, day_from, day_to)
        else:
            assert row.balance_after == expected_daily_balance(user, row)
