"""Capture the exact SQL our services send for one metered request (hold, usage report, settlement),
and turn it into a pgbench script that replays it with other accounts' ids: baseline P.

Each statement is rendered by psycopg exactly as Django sends it; ids that differ per request become
pgbench variables: the account/user/token of the request (from the client's random pick) and the ids
that INSERT ... RETURNING hands back (hold, generation, ledger transaction, via \\gset).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from django.db import connection

_MARK = "__bench_{}__"


@contextmanager
def capture():
    statements: list[tuple[str, list]] = []

    def wrapper(execute, sql, params, many, context):
        statements.append((sql, dict(params) if isinstance(params, dict) else (list(params) if params is not None else None), many))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield statements


def _render(sql: str, params, substitutions) -> str:
    """Mogrify with placeholders for the variable parts, then swap the placeholders for pgbench text."""
    if params is None:
        return sql
    swaps = {}
    items = params.items() if isinstance(params, dict) else enumerate(params)
    marked = {} if isinstance(params, dict) else [None] * len(params)
    for i, value in items:
        replacement = substitutions(value)
        if replacement is None:
            marked[i] = value
        else:
            token = _MARK.format(i)
            swaps[f"'{token}'"] = replacement
            marked[i] = token
    from psycopg import ClientCursor

    text = ClientCursor(connection.connection).mogrify(sql, marked)
    for token, replacement in swaps.items():
        text = text.replace(token, replacement)
    return text


def pgbench_script(phases: list[list[tuple]], *, ids: dict[int, str], key_hash: str, key_sql: str) -> str:
    """Build the script. `ids` maps literal ids seen in the captured SQL to pgbench expressions (":aid",
    or ":h_id" for a row the script itself inserted); `key_hash` (the token key's hash) becomes SQL that
    hashes the picked token's key."""
    # Rows whose ids later statements use: the generation (and, from the same statement, its hold).
    returning = {"billing_generation": "g_"}

    def substitutions(value):
        if isinstance(value, bool):
            return None
        if isinstance(value, (list, tuple)) and any(isinstance(v, int) and v in ids for v in value):
            cast = "::bigint[]" if all(isinstance(v, int) for v in value) else ""  # pgbench binds variables as text
            return "ARRAY[" + ",".join(ids.get(v, str(v)) if isinstance(v, int) else str(v) for v in value) + "]" + cast
        if isinstance(value, int) and value in ids:
            return ids[value]
        if isinstance(value, str):
            if value == key_hash:
                return key_sql
            if value.startswith("gen-"):
                return "'gen-' || md5(random()::text || clock_timestamp()::text)"
            match = re.fullmatch(r"hold-settle:(\d+)", value)
            if match and int(match.group(1)) in ids:
                return f"'hold-settle:' || {ids[int(match.group(1))]}"
        return None

    lines = []
    for phase in phases:
        lines.append("BEGIN;")
        for sql, params, _many in phase:
            text = _render(sql, params, substitutions).strip()
            table = next((t for t in returning if re.search(rf'INSERT INTO "?{t}"?', text)), None)
            if table and "RETURNING" in text:
                lines.append(f"{text} \\gset {returning[table]}")
            else:
                lines.append(text + ";")
        lines.append("COMMIT;")
    # pgbench wants one command per line.
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"
