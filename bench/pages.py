#!/usr/bin/env python
"""The dashboard chart and the balance history at 10,000 and at 1,000,000 usage records.

    .venv/bin/python bench/pages.py            # 10,000 vs 1,000,000 settled requests (a few minutes)
    .venv/bin/python bench/pages.py --quick    # 10,000 vs 100,000

Seeds two users in its own database (BENCH_PAGES_DATABASE_URL, default synstar_bench_pages, recreated
each run) with settled requests spread over 45 days and three models, each with its real ledger rows
(hold, settlement posting and its two entries), plus top-ups between them, all by generate_series SQL;
then builds the daily rollup with the backfill (`usage_days_rebuild`, what `rollup_rebuild` runs) and
checks the ledger. Each page is requested for both users alternately (median of 15); the script fails
unless every page makes the same number of queries at both sizes, and prints the time ratios. Writes
bench/results/pages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from html import unescape
from pathlib import Path

os.environ.setdefault(
    "BENCH_DATABASE_URL", os.environ.get("BENCH_PAGES_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/synstar_bench_pages")
)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import DB, ROOT, bench_fixtures, django_setup, log, psql, recreate_database, seed_accounts  # noqa: E402

DAYS = 45
TOPUPS = 60


def seed_usage(prefix: str, rows: int) -> int:
    """One user with `rows` settled requests over the last DAYS days and TOPUPS grants between them."""
    from synstar.money import usd
    from wallet.models import SystemAccount
    from wallet.services.ledger import system_account_id

    seeded = seed_accounts(prefix, 1, balance_usd="100000")
    uid, aid, tid = seeded["users"][0], seeded["accounts"][0], seeded["tokens"][0]
    revenue, promotions = system_account_id(SystemAccount.REVENUE), system_account_id(SystemAccount.PROMOTIONS)
    gateway = psql("SELECT id FROM billing_gatewaykey LIMIT 1", DB["name"])
    models = psql("SELECT string_agg(id::text, ',') FROM billing_modelprice WHERE name IN ('gpt-4o', 'gpt-4o-mini', 'dall-e-3')", DB["name"])
    topup = usd("25")
    # The ledger's triggers (append-only, balanced at commit) are set aside for the bulk load only: every
    # posting below is balanced by construction and check_ledger verifies the result.
    # Ids follow time, as in production: every posting (settlements and top-ups interleaved) takes its
    # transaction id and its two entries' ids in time order.
    psql(f"""
        SET session_replication_role = replica;
        UPDATE wallet_entry SET statement_kind = 'grant' WHERE account_id = {aid};
        CREATE TEMP TABLE p0 AS
            SELECT g, now() - (({rows} - g) * ({DAYS} * 86400.0 / {rows})) * interval '1 second' - interval '1 second' AS at,
                   100000 + (g % 97) * 10000 AS cost, (ARRAY[{models}])[1 + g % 3] AS model, 'settlement'::text AS kind
              FROM generate_series(1, {rows}) g
            UNION ALL
            SELECT g, now() - (g * ({DAYS} * 86400.0 / {TOPUPS}) + 1) * interval '1 second', {topup}, NULL, 'grant'
              FROM generate_series(1, {TOPUPS}) g;
        CREATE TEMP TABLE p AS
            SELECT o.*, nextval('wallet_transaction_id_seq') AS txn,
                   CASE WHEN kind = 'settlement' THEN nextval('wallet_hold_id_seq') END AS hold
              FROM (SELECT * FROM p0 ORDER BY at) o;
        INSERT INTO wallet_transaction (id, kind, idempotency_key, description, reason, user_reason, created_at)
            SELECT txn, kind, CASE WHEN kind = 'settlement' THEN 'hold-settle:' || hold ELSE 'bench-topup:{prefix}:' || g END,
                   CASE WHEN kind = 'settlement' THEN 'Usage' ELSE 'Promotional credit' END, '', '', at
              FROM p ORDER BY at;
        INSERT INTO wallet_entry (transaction_id, account_id, amount, statement_kind)
            SELECT txn,
                   CASE WHEN side = 1 THEN {aid} WHEN kind = 'settlement' THEN {revenue} ELSE {promotions} END,
                   CASE WHEN (side = 1) = (kind = 'settlement') THEN -cost ELSE cost END,
                   CASE WHEN kind = 'settlement' THEN NULL ELSE 'grant' END
              FROM p CROSS JOIN (VALUES (1), (2)) v(side) ORDER BY at, side;
        INSERT INTO wallet_hold (id, account_id, amount, status, expires_at, settled_amount, settlement_id, created_at, closed_at)
            SELECT hold, {aid}, cost, 'settled', at, cost, txn, at, at FROM p WHERE kind = 'settlement';
        INSERT INTO billing_generation (public_id, user_id, token_id, gateway_id, hold_id, model_id, group_name, endpoint, state,
            est_input_tokens, est_output_tokens, est_units, rate, price_snapshot, estimated_cost, input_tokens, output_tokens,
            cached_tokens, units, outcome, error, final_cost, charge_basis, over_estimate, created_at, deadline, reported_at, closed_at)
            SELECT 'gen-{prefix}-' || g, {uid}, {tid}, {gateway}, hold, model, 'default', '/v1/chat/completions', 'settled',
                500, 500, 0, 1, '{{"billing_type": "per_token"}}'::jsonb, cost, 500, 40, 0, NULL, 'succeeded', '', cost,
                'reported', false, at, at, at, at
              FROM p WHERE kind = 'settlement' ORDER BY at;
        UPDATE wallet_account SET balance = balance - (SELECT sum(cost) FROM p WHERE kind = 'settlement') + {TOPUPS} * {topup},
               consumed = consumed + (SELECT sum(cost) FROM p WHERE kind = 'settlement'), request_count = request_count + {rows}
         WHERE id = {aid};
        SELECT setval('billing_generation_id_seq', (SELECT max(id) FROM billing_generation));
    """, DB["name"])
    return uid


def measure(uids: dict[str, int], repeats: int) -> dict:
    """Server time (median) and query count of each page for each user, requests alternating."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from synstar.accounts.models import User

    past = (timezone.now() - timezone.timedelta(days=20)).date().isoformat()
    clients, pages = {}, {}
    for scale, uid in uids.items():
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(User.objects.get(pk=uid))
        clients[scale] = client

        def older(url, client=client):
            body = client.get(url).content.decode()
            link = re.search(r'data-testid="history-older" href="([^"]+)"', body)
            assert link, f"no older page at {url}"
            return "/history/" + unescape(link.group(1))

        pages[scale] = {
            "dashboard": "/",
            "history_first": "/history/",
            "history_second": older("/history/"),
            "history_until_20_days_ago": f"/history/?date_to={past}",
            "history_usage_days": "/history/?kind=usage",
            "history_topups_only": "/history/?kind=grant",
            "history_csv_daily": "/history/?format=csv",
            "history_per_request_first": "/history/?view=request",
            "history_per_request_third": older(older("/history/?view=request")),
            "history_per_request_until_20_days_ago": f"/history/?view=request&date_to={past}",
            "history_per_request_one_day_20_days_ago": f"/history/?view=request&kind=usage&date_from={past}&date_to={past}",
        }
    out: dict = {scale: {} for scale in uids}
    for page in pages[next(iter(uids))]:
        times: dict = {scale: [] for scale in uids}
        queries = {}
        for scale in uids:
            response = clients[scale].get(pages[scale][page])  # warm
            if response.streaming:
                b"".join(response.streaming_content)
        for _ in range(repeats):
            for scale in uids:
                with CaptureQueriesContext(connection) as ctx:
                    t = time.perf_counter()
                    response = clients[scale].get(pages[scale][page])
                    if response.streaming:
                        b"".join(response.streaming_content)
                    times[scale].append(time.perf_counter() - t)
                assert response.status_code == 200, (pages[scale][page], response.status_code)
                queries[scale] = len(ctx)
        for scale in uids:
            out[scale][page] = {"ms": round(statistics.median(times[scale]) * 1000, 2), "queries": queries[scale]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    big = 100_000 if args.quick else 1_000_000
    log(f"recreating {DB['name']}")
    recreate_database()
    django_setup()
    bench_fixtures()
    log(f"seeding 10,000 and {big:,} settled usage records over {DAYS} days")
    t = time.perf_counter()
    small_uid = seed_usage("small", 10_000)
    big_uid = seed_usage("big", big)
    seeded_s = round(time.perf_counter() - t, 1)
    from billing.services.usage import usage_days_rebuild
    from wallet.selectors.ledger import ledger_problems

    psql("ANALYZE", DB["name"])
    t = time.perf_counter()
    rollup_rows = usage_days_rebuild()
    rebuild_s = round(time.perf_counter() - t, 2)
    psql("ANALYZE", DB["name"])
    problems = ledger_problems()
    assert problems == [], problems[:5]
    log(f"seeded in {seeded_s}s; rollup rebuilt in {rebuild_s}s ({rollup_rows} rows); ledger checked")
    scales = {"10k": small_uid, f"{big // 1000}k": big_uid}
    results = measure(scales, 15)
    small, large = results["10k"], results[f"{big // 1000}k"]
    ratios = {page: round(large[page]["ms"] / small[page]["ms"], 3) for page in small}
    same = {page: large[page]["queries"] == small[page]["queries"] for page in small}
    out = {"usage_records": {"small": 10_000, "big": big}, "days": DAYS, "rollup_rows": rollup_rows,
           "rollup_rebuild_s": rebuild_s, "pages": results, "time_big_over_small": ratios, "same_query_count": same}
    path = ROOT / "bench" / "results" / "pages.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\n{'page':<40} {'10k ms / q':>14} {'big ms / q':>14} {'ratio':>7}")
    for page in small:
        print(f"{page:<40} {small[page]['ms']:>8} / {small[page]['queries']:<3} {large[page]['ms']:>8} / {large[page]['queries']:<3}"
              f" {ratios[page]:>7}")
    log(f"wrote {path.relative_to(ROOT)}")
    assert all(same.values()), f"query counts differ between the sizes: {same}"


if __name__ == "__main__":
    main()
