"""The metering hot path in explicit SQL: every API request runs it, so it is a few round trips.

It writes exactly the rows the ORM services would (holds, generations, the settlement posting with its
idempotency key `hold-settle:<hold id>`, cached balances), which the tests and check_ledger verify.
Lock order is the same everywhere: generation, hold, then account, then token. The account row is
always changed by a statement of its own before the token's: data-modifying CTEs run in no defined
order, so the account update is never folded into a CTE that also touches a token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

LOOKUP_SQL = """
SELECT t.id, t.user_id, t.quota, t.used, t.held, t.is_enabled, t.expires_at, t.allowed_models, t.allowed_ips,
       u.status, u.review_reason, u.is_active,
       g.name, g.is_public OR EXISTS (
           SELECT 1 FROM billing_tokengroup_allowed_users au WHERE au.tokengroup_id = g.id AND au.user_id = t.user_id),
       (SELECT a.id FROM wallet_account a WHERE a.user_id = t.user_id AND a.kind = 'main'),
       m.id, COALESCE(o.rate, tr.rate),
       m.billing_type, m.input_per_million, m.output_per_million, m.cached_input_per_million, m.long_context_threshold,
       m.long_input_per_million, m.long_output_per_million, m.long_cached_input_per_million, m.request_price, m.unit,
       m.unit_price, m.minimum_charge, m.default_max_output_tokens
  FROM billing_apitoken t
  JOIN accounts_user u ON u.id = t.user_id
  JOIN billing_tokengroup g ON g.id = t.group_id
  JOIN billing_billingtier tr ON tr.id = g.tier_id
  LEFT JOIN billing_modelprice m ON m.name = %(model)s AND m.is_active
  LEFT JOIN billing_tiermodelrate o ON o.tier_id = tr.id AND o.model_id = m.id
 WHERE t.key_hash = %(key_hash)s AND t.deleted_at IS NULL
"""

PRICE_COLUMNS = (
    "billing_type", "input_per_million", "output_per_million", "cached_input_per_million", "long_context_threshold",
    "long_input_per_million", "long_output_per_million", "long_cached_input_per_million", "request_price", "unit",
    "unit_price", "minimum_charge", "default_max_output_tokens",
)


@dataclass
class Lookup:
    token_id: int
    user_id: int
    quota: int | None
    used: int
    held: int
    is_enabled: bool
    expires_at: datetime | None
    allowed_models: list
    allowed_ips: list
    user_status: str
    review_reason: str
    user_active: bool
    group_name: str
    group_allowed: bool
    account_id: int | None
    model_id: int | None
    rate: Decimal | None
    price: dict


def lookup(*, key_hash: str, model: str) -> Lookup | None:
    """Token, its user and group, the user's main account, the model's price and the rate: one query."""
    with connection.cursor() as cursor:
        cursor.execute(LOOKUP_SQL, {"key_hash": key_hash, "model": model})
        row = cursor.fetchone()
    if row is None:
        return None
    head, price = row[:17], row[17:]
    allowed_models, allowed_ips = (json.loads(v) if isinstance(v, str) else v for v in (head[7], head[8]))
    return Lookup(*head[:7], allowed_models, allowed_ips, *head[9:], price=dict(zip(PRICE_COLUMNS, price)))


def account_hold(*, account_id: int, amount: int) -> int | None:
    """Raise held if balance - held >= amount, in one statement. Returns the available after, or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallet_account SET held = held + %s WHERE id = %s AND kind = 'main' AND balance >= held + %s "
            "RETURNING balance - held",
            [amount, account_id, amount],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


HOLD_SQL = """
WITH tok AS (
    UPDATE billing_apitoken SET held = held + %(est)s, last_used_at = %(now)s
     WHERE id = %(token_id)s AND (quota IS NULL OR quota >= used + held + %(est)s)
    RETURNING id),
h AS (
    INSERT INTO wallet_hold (account_id, amount, status, expires_at, created_at)
    SELECT %(account_id)s, %(est)s, 'open', %(deadline)s, %(now)s FROM tok
    RETURNING id)
INSERT INTO billing_generation (
    public_id, user_id, token_id, gateway_id, request_id, hold_id, model_id, group_name, endpoint, client_ip, state,
    est_input_tokens, est_output_tokens, est_units, rate, price_snapshot, estimated_cost, outcome, error, charge_basis,
    created_at, deadline)
SELECT %(public_id)s, %(user_id)s, %(token_id)s, %(gateway_id)s, %(request_id)s, h.id, %(model_id)s, %(group_name)s,
       %(endpoint)s, %(client_ip)s, 'held', %(est_input)s, %(est_output)s, %(est_units)s, %(rate)s, %(snapshot)s::jsonb,
       %(est)s, '', '', '', %(now)s, %(deadline)s
  FROM h
RETURNING id, hold_id
"""


def token_hold_and_open(**params) -> tuple[int, int] | None:
    """Raise the token's held within its quota, open the hold and the generation. (generation id, hold id)
    or None when the token's quota refuses (nothing inserted)."""
    params["snapshot"] = json.dumps(params["snapshot"])
    with connection.cursor() as cursor:
        cursor.execute(HOLD_SQL, params)
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


REPORT_TARGET_SQL = """
SELECT id, estimated_cost, price_snapshot, rate FROM billing_generation WHERE public_id = %s AND gateway_id = %s
"""


def report_target(*, public_id: str, gateway_id: int) -> tuple | None:
    """What pricing a report needs (fixed at hold time): (generation id, estimate, price snapshot, rate)."""
    with connection.cursor() as cursor:
        cursor.execute(REPORT_TARGET_SQL, [public_id, gateway_id])
        row = cursor.fetchone()
    if row is None:
        return None
    snapshot = json.loads(row[2]) if isinstance(row[2], str) else row[2]
    return row[0], row[1], snapshot, row[3]


REPORT_SQL = """
UPDATE billing_generation
   SET input_tokens = %(input_tokens)s, output_tokens = %(output_tokens)s, cached_tokens = %(cached_tokens)s,
       units = %(units)s, outcome = %(outcome)s, error = %(error)s, over_estimate = %(over_estimate)s,
       state = 'reported', reported_at = %(now)s
 WHERE id = %(generation_id)s AND state IN ('held', 'expired')
RETURNING id
"""


def report(**params) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(REPORT_SQL, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


SETTLE_LOCK_SQL = """
SELECT g.state, g.hold_id, g.token_id, g.estimated_cost, g.expired_at IS NULL, g.outcome, g.price_snapshot, g.rate,
       g.input_tokens, g.output_tokens, g.cached_tokens, g.units, g.est_input_tokens, g.est_output_tokens, g.est_units,
       h.account_id
  FROM billing_generation g JOIN wallet_hold h ON h.id = g.hold_id
 WHERE g.id = %s
   FOR UPDATE
"""


def settle_lock(generation_id: int) -> tuple | None:
    """Lock the generation and its hold (in that order) and read what settlement needs."""
    with connection.cursor() as cursor:
        cursor.execute(SETTLE_LOCK_SQL, [generation_id])
        return cursor.fetchone()


def account_settle(*, account_id: int, cost: int, lift: int, count: int) -> None:
    """One UPDATE of the account row: charge, lift the hold, add consumption and the request."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallet_account SET balance = balance - %(cost)s, held = held - %(lift)s, "
            "consumed = consumed + %(cost)s, request_count = request_count + %(count)s WHERE id = %(id)s",
            {"cost": cost, "lift": lift, "count": count, "id": account_id},
        )


CLOSE_CHARGED_SQL = """
WITH x AS (
    INSERT INTO wallet_transaction (kind, idempotency_key, description, reason, created_at)
    VALUES ('settlement', 'hold-settle:' || %(hold_id)s, 'Usage', '', %(now)s)
    RETURNING id),
e AS (
    INSERT INTO wallet_entry (transaction_id, account_id, amount)
    SELECT x.id, v.account_id, v.amount FROM x, (VALUES (%(account_id)s::bigint, -%(cost)s::bigint),
                                                        (%(revenue_id)s::bigint, %(cost)s::bigint)) v(account_id, amount)),
h AS (
    UPDATE wallet_hold SET status = 'settled', settled_amount = %(cost)s, settlement_id = (SELECT id FROM x),
           closed_at = %(now)s
     WHERE id = %(hold_id)s),
t AS (
    UPDATE billing_apitoken SET held = held - %(lift)s, used = used + %(cost)s WHERE id = %(token_id)s)
UPDATE billing_generation SET state = 'settled', final_cost = %(cost)s, charge_basis = %(basis)s, closed_at = %(now)s
 WHERE id = %(generation_id)s
"""

CLOSE_FREE_SQL = """
WITH h AS (
    UPDATE wallet_hold SET status = %(hold_status)s, settled_amount = %(settled)s, closed_at = %(now)s
     WHERE id = %(hold_id)s AND status = ANY(%(hold_from)s)),
t AS (
    UPDATE billing_apitoken SET held = held - %(lift)s WHERE id = %(token_id)s)
UPDATE billing_generation SET state = %(state)s, final_cost = 0, charge_basis = %(basis)s, closed_at = %(now)s
 WHERE id = %(generation_id)s
"""


def close_charged(**params) -> None:
    """The settlement posting (transaction + two entries), the hold, the token and the generation."""
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_CHARGED_SQL, params)


def close_free(**params) -> None:
    """No charge: a failed request released, or a zero-cost request settled."""
    with connection.cursor() as cursor:
        cursor.execute(CLOSE_FREE_SQL, params)


# --- settlement in batches (the Celery worker's path) ---------------------------------------------

BATCH_LOCK_SQL = """
SELECT g.id, g.hold_id, g.token_id, g.estimated_cost, g.expired_at IS NULL, g.outcome, g.price_snapshot, g.rate,
       g.input_tokens, g.output_tokens, g.cached_tokens, g.units, g.est_input_tokens, g.est_output_tokens, g.est_units,
       h.account_id
  FROM billing_generation g JOIN wallet_hold h ON h.id = g.hold_id
 WHERE g.state = 'reported'
 ORDER BY g.id
 LIMIT %s
   FOR UPDATE OF g, h SKIP LOCKED
"""


def batch_lock(limit: int) -> list[tuple]:
    """Take up to `limit` reported generations (and their holds) that nobody else is settling."""
    with connection.cursor() as cursor:
        cursor.execute(BATCH_LOCK_SQL, [limit])
        return cursor.fetchall()


def batch_apply(*, accounts: dict, tokens: dict, charged: list, holds: list, generations: list, now, revenue_id: int) -> None:
    """Apply a batch: lock accounts then tokens in ascending id order, update each once, then write the
    settlement postings, holds and generations in set-based statements."""
    with connection.cursor() as cursor:
        account_ids = sorted(accounts)
        cursor.execute("SELECT id FROM wallet_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [account_ids])
        cursor.execute(
            "UPDATE wallet_account a SET balance = a.balance - v.cost, held = a.held - v.lift,"
            " consumed = a.consumed + v.cost, request_count = a.request_count + v.n"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) v(id, cost, lift, n) WHERE a.id = v.id",
            [account_ids, [accounts[a][0] for a in account_ids], [accounts[a][1] for a in account_ids],
             [accounts[a][2] for a in account_ids]],
        )
        token_ids = sorted(tokens)
        cursor.execute("SELECT id FROM billing_apitoken WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [token_ids])
        cursor.execute(
            "UPDATE billing_apitoken t SET held = t.held - v.lift, used = t.used + v.cost"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) v(id, cost, lift) WHERE t.id = v.id",
            [token_ids, [tokens[t][0] for t in token_ids], [tokens[t][1] for t in token_ids]],
        )
        txn_for_hold = {}
        if charged:  # (hold id, account id, cost)
            cursor.execute(
                "INSERT INTO wallet_transaction (kind, idempotency_key, description, reason, created_at)"
                " SELECT 'settlement', 'hold-settle:' || h, 'Usage', '', %s FROM unnest(%s::bigint[]) h"
                " RETURNING id, idempotency_key",
                [now, [c[0] for c in charged]],
            )
            txn_for_hold = {int(key.split(":")[1]): txn for txn, key in cursor.fetchall()}
            txns, entry_accounts, amounts = [], [], []
            for hold_id, account_id, cost in charged:
                txns += [txn_for_hold[hold_id]] * 2
                entry_accounts += [account_id, revenue_id]
                amounts += [-cost, cost]
            cursor.execute(
                "INSERT INTO wallet_entry (transaction_id, account_id, amount)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
                [txns, entry_accounts, amounts],
            )
        if holds:  # (hold id, new status, settled amount or None)
            cursor.execute(
                "UPDATE wallet_hold h SET status = v.status, settled_amount = v.settled, settlement_id = v.txn, closed_at = %s"
                " FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[]) v(id, status, settled, txn) WHERE h.id = v.id",
                [now, [h[0] for h in holds], [h[1] for h in holds], [h[2] for h in holds],
                 [txn_for_hold.get(h[0]) for h in holds]],
            )
        cursor.execute(  # (generation id, state, cost, basis)
            "UPDATE billing_generation g SET state = v.state, final_cost = v.cost, charge_basis = v.basis, closed_at = %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[]) v(id, state, cost, basis) WHERE g.id = v.id",
            [now, [g[0] for g in generations], [g[1] for g in generations], [g[2] for g in generations],
             [g[3] for g in generations]],
        )
