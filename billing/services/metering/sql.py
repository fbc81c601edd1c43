"""The metering hot path in explicit SQL: every API request runs it, so it is a few round trips.

It writes exactly the rows the ORM version (`orm.py`) does, which the tests and check_ledger verify.
The wallet's rows of a settlement (account, posting `hold-settle:<hold id>`, hold) are written by the
ledger (`wallet.services.ledger.holds_settle`); this module writes billing's (token, generation).
Lock order is the same everywhere: generation, hold, then account, then token. The account row is
always changed by a statement of its own before the token's: data-modifying CTEs run in no defined
order, so the account update is never folded into a CTE that also touches a token.

The hold's placement (`account_hold`: the account's held, or `lease_hold`: a lease's used on a hot
account, then `token_hold_and_open`: the token's held, the wallet_hold row and the generation in one
statement) stays here: moving the wallet_hold insert to
the ledger would cost a round trip on every API request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
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
       m.unit_price, m.minimum_charge, m.default_max_output_tokens,
       t.rpm_limit, t.budget
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
    rpm_limit: int | None = None
    budget: int | None = None

    @property
    def limited(self) -> bool:
        """A quota or a budget: the hold raises the token's held under its row lock. A token without
        either is not locked per request (settlement still counts its usage, once per batch)."""
        return self.quota is not None or self.budget is not None


def lookup(*, key_hash: str, model: str) -> Lookup | None:
    """Token, its user and group, the user's main account, the model's price and the rate: one query."""
    with connection.cursor() as cursor:
        cursor.execute(LOOKUP_SQL, {"key_hash": key_hash, "model": model})
        row = cursor.fetchone()
    if row is None:
        return None
    head, price, rpm_limit, budget = row[:17], row[17:-2], row[-2], row[-1]
    allowed_models, allowed_ips = (json.loads(v) if isinstance(v, str) else v for v in (head[7], head[8]))
    return Lookup(*head[:7], allowed_models, allowed_ips, *head[9:],  # type: ignore[call-arg,misc]  # the row, in field order
                  price=dict(zip(PRICE_COLUMNS, price)), rpm_limit=rpm_limit, budget=budget)


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


def lease_hold(*, lease_id: int, amount: int, now) -> int | None:
    """Place `amount` on an open lease that has room and is not past its deadline, in one statement: the
    lease row is the only row locked (the account's balance - held is read, not locked). Returns that
    available balance, or None if the hold does not fit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallet_lease l SET used = used + %s WHERE id = %s AND status = 'open' AND expires_at > %s"
            " AND used + %s <= size RETURNING (SELECT a.balance - a.held FROM wallet_account a WHERE a.id = l.account_id)",
            [amount, lease_id, now, amount],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]
# --- token budgets (h-alerts) ---
# The start of the token's budget period as of %(now)s: 00:00 of the day, ISO week or month in the budget
# zone (billing/selectors/budgets.py is its Python twin). `period_used` counts the period that began at
# `period_start`; an older `period_start` means a new period began and nothing of it is used yet.
PERIOD_START = "(date_trunc({t}budget_period, %(now)s AT TIME ZONE %(budget_tz)s) AT TIME ZONE %(budget_tz)s)"
# The budget predicate of the hold: the period's settled usage, the token's open holds and this one fit.
BUDGET_OK = (
    "({t}budget IS NULL OR {t}budget >= {t}held + %(est)s"
    " + CASE WHEN {t}period_start >= " + PERIOD_START + " THEN {t}period_used ELSE 0 END)"
)
# Settlement's SET: the cost counts into the current period, rolled over when a new one began.
BUDGET_SETTLE_SET = (
    "period_used = CASE WHEN {t}period_start >= " + PERIOD_START + " THEN {t}period_used ELSE 0 END + {cost},"
    " period_start = GREATEST({t}period_start, " + PERIOD_START + ")"
)


def _budget_params(params: dict) -> dict:
    params.setdefault("budget_tz", settings.TOKEN_BUDGET_TIME_ZONE)
    return params
# --- end token budgets ---


# The hold row and the generation, from `{source}` (the token's update when it has limits, else nothing).
HOLD_INSERTS_SQL = """
h AS (
    INSERT INTO wallet_hold (account_id, lease_id, in_lease, lease_spent, amount, status, expires_at, created_at)
    SELECT %(account_id)s, %(lease_id)s, %(lease_id)s IS NOT NULL, 0, %(est)s, 'open', %(deadline)s, %(now)s {source}
    RETURNING id)
INSERT INTO billing_generation (
    public_id, user_id, token_id, gateway_id, request_id, hold_id, model_id, group_name, endpoint, client_ip, state,
    est_input_tokens, est_output_tokens, est_units, rate, price_snapshot, estimated_cost, outcome, error, charge_basis,
    created_at, deadline, token_held)
SELECT %(public_id)s, %(user_id)s, %(token_id)s, %(gateway_id)s, %(request_id)s, h.id, %(model_id)s, %(group_name)s,
       %(endpoint)s, %(client_ip)s, 'held', %(est_input)s, %(est_output)s, %(est_units)s, %(rate)s, %(snapshot)s::jsonb,
       %(est)s, '', '', '', %(now)s, %(deadline)s, %(token_held)s
  FROM h
RETURNING id, hold_id
"""

HOLD_SQL = """
WITH tok AS (
    UPDATE billing_apitoken SET held = held + %(est)s, last_used_at = %(now)s
     WHERE id = %(token_id)s AND (quota IS NULL OR quota >= used + held + %(est)s)
       AND """ + BUDGET_OK.format(t="") + """
    RETURNING id),""" + HOLD_INSERTS_SQL.format(source="FROM tok")

# A token without quota or budget: its row is not locked per request (nothing of it is checked).
HOLD_FREE_SQL = "WITH" + HOLD_INSERTS_SQL.format(source="")


def token_hold_and_open(**params) -> tuple[int, int] | None:
    """Raise the token's held within its quota and budget (`token_held`: the token has either), open the
    hold and the generation. (generation id, hold id) or None when the token's quota or budget refuses
    (nothing inserted)."""
    params["snapshot"] = json.dumps(params["snapshot"])
    with connection.cursor() as cursor:
        cursor.execute(HOLD_SQL if params["token_held"] else HOLD_FREE_SQL, _budget_params(params))
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
       charge_basis = %(basis)s, state = 'reported', reported_at = %(now)s
 WHERE id = %(generation_id)s AND state IN ('held', 'expired')
RETURNING id
"""


def report(**params) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(REPORT_SQL, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class SettleRow:
    """What settling one reported generation needs, read under the lock of the generation and its hold."""

    generation_id: int
    state: str
    hold_id: int
    hold_open: bool  # the sweeper has not expired it: its frozen amount is still in the account's held
    account_id: int
    token_id: int
    estimate: int
    outcome: str
    snapshot: dict
    rate: Decimal
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    units: Decimal | None
    est_input: int
    est_output: int
    est_units: Decimal
    basis: str  # set at report time when the usage was counted by the relay, not reported by an upstream
    lease_id: int | None = None  # the lease the hold was placed on
    in_lease: bool = False  # and it still counts in that lease's used (the lease is open and has not folded it)
    token_held: bool = True  # the hold raised the token's held (a token with a quota or budget)

    @classmethod
    def from_row(cls, row) -> SettleRow:
        row = list(row)
        if isinstance(row[8], str):
            row[8] = json.loads(row[8])
        return cls(*row)


@dataclass(frozen=True)
class GenerationClose:
    """Billing's side of settling one generation: its token's held down by `lift` and used up by `cost`,
    the generation closed in `state` with `cost` as its final cost."""

    generation_id: int
    token_id: int
    state: str
    cost: int
    lift: int
    basis: str


SETTLE_COLUMNS = """g.id, g.state, g.hold_id, g.expired_at IS NULL, h.account_id, g.token_id, g.estimated_cost, g.outcome,
       g.price_snapshot, g.rate, g.input_tokens, g.output_tokens, g.cached_tokens, g.units, g.est_input_tokens,
       g.est_output_tokens, g.est_units, g.charge_basis, h.lease_id, h.in_lease, g.token_held"""

SETTLE_LOCK_SQL = f"""
SELECT {SETTLE_COLUMNS}
  FROM billing_generation g JOIN wallet_hold h ON h.id = g.hold_id
 WHERE g.id = %s
   FOR NO KEY UPDATE
"""


def settle_lock(generation_id: int) -> SettleRow | None:
    """Lock the generation and its hold (in that order) and read what settlement needs."""
    with connection.cursor() as cursor:
        cursor.execute(SETTLE_LOCK_SQL, [generation_id])
        row = cursor.fetchone()
    return None if row is None else SettleRow.from_row(row)


CLOSE_SQL = """
WITH t AS (
    UPDATE billing_apitoken SET held = held - %(lift)s, used = used + %(cost)s, last_used_at = %(now)s,
           """ + BUDGET_SETTLE_SET.format(t="", cost="%(cost)s") + """
     WHERE id = %(token_id)s)
UPDATE billing_generation SET state = %(state)s, final_cost = %(cost)s, charge_basis = %(basis)s, closed_at = %(now)s
 WHERE id = %(generation_id)s
"""


def generations_close(closes: list[GenerationClose], *, now) -> None:
    """Billing's rows of settled generations, after the wallet's (`holds_settle`): their tokens (locked in
    ascending id order, each updated once) and the generations. One generation is one statement; a
    batch three set-based ones."""
    with connection.cursor() as cursor:
        if len(closes) == 1:
            (c,) = closes
            cursor.execute(CLOSE_SQL, _budget_params({"lift": c.lift, "cost": c.cost, "token_id": c.token_id, "state": c.state,
                                       "basis": c.basis, "now": now, "generation_id": c.generation_id}))
            return
        tokens: dict[int, list[int]] = {}
        for c in closes:
            t = tokens.setdefault(c.token_id, [0, 0])
            t[0] += c.cost
            t[1] += c.lift
        token_ids = sorted(tokens)
        cursor.execute("SELECT id FROM billing_apitoken WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE", [token_ids])
        cursor.execute(
            "UPDATE billing_apitoken t SET held = t.held - v.lift, used = t.used + v.cost, last_used_at = %(now)s, "
            + BUDGET_SETTLE_SET.format(t="t.", cost="v.cost")
            + " FROM unnest(%(ids)s::bigint[], %(costs)s::bigint[], %(lifts)s::bigint[]) v(id, cost, lift) WHERE t.id = v.id",
            _budget_params({"ids": token_ids, "costs": [tokens[t][0] for t in token_ids],
                            "lifts": [tokens[t][1] for t in token_ids], "now": now}),
        )
        cursor.execute(
            "UPDATE billing_generation g SET state = v.state, final_cost = v.cost, charge_basis = v.basis, closed_at = %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[]) v(id, state, cost, basis) WHERE g.id = v.id",
            [now, [c.generation_id for c in closes], [c.state for c in closes], [c.cost for c in closes],
             [c.basis for c in closes]],
        )


# --- settlement in batches (the Celery worker's path) ---------------------------------------------

BATCH_LOCK_SQL = f"""
SELECT {SETTLE_COLUMNS}
  FROM billing_generation g JOIN wallet_hold h ON h.id = g.hold_id
 WHERE g.state = 'reported'
 ORDER BY g.id
 LIMIT %s
   FOR NO KEY UPDATE OF g, h SKIP LOCKED
"""


def batch_lock(limit: int) -> list[SettleRow]:
    """Take up to `limit` reported generations (and their holds) that nobody else is settling."""
    with connection.cursor() as cursor:
        cursor.execute(BATCH_LOCK_SQL, [limit])
        return [SettleRow.from_row(row) for row in cursor.fetchall()]


# --- the daily usage rollup (billing_usageday), in the settlement's transaction ----------------------

# The day of a charge is the UTC day of its settlement posting (a free request has none: its close time).
# Its entry on the user's account is found by the posting's id alone (`account_id + 0` keeps the planner off
# the account index, which would read every entry of a busy account).
USAGE_DAY_SQL = "(COALESCE(t.created_at, g.closed_at) AT TIME ZONE 'UTC')::date"

USAGE_DAYS_ADD_SQL = f"""
INSERT INTO billing_usageday (user_id, day, model_id, cost, requests, first_entry_id, last_entry_id)
SELECT g.user_id, {USAGE_DAY_SQL}, g.model_id, SUM(g.final_cost), COUNT(*), MIN(e.id), MAX(e.id)
  FROM billing_generation g
  JOIN wallet_hold h ON h.id = g.hold_id
  LEFT JOIN wallet_transaction t ON t.id = h.settlement_id
  LEFT JOIN wallet_entry e ON e.transaction_id = t.id AND e.account_id + 0 = h.account_id
 WHERE g.id = ANY(%s) AND g.state = 'settled'
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
ON CONFLICT (user_id, day, model_id) DO UPDATE
   SET cost = billing_usageday.cost + EXCLUDED.cost, requests = billing_usageday.requests + EXCLUDED.requests,
       first_entry_id = LEAST(billing_usageday.first_entry_id, EXCLUDED.first_entry_id),
       last_entry_id = GREATEST(billing_usageday.last_entry_id, EXCLUDED.last_entry_id)
"""


def usage_days_add(generation_ids: list[int]) -> None:
    """Add just-settled generations to the daily rollup: one statement for the whole batch, after the
    generations are closed. Its rows belong to the batch's users, whose accounts this transaction already
    locked, so it waits on no lock the account order does not already order."""
    if generation_ids:
        with connection.cursor() as cursor:
            cursor.execute(USAGE_DAYS_ADD_SQL, [generation_ids])
