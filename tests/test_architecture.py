"""The dependency rules of docs/architecture.md, checked on the source: a new import that points the wrong
way, a function-level import that breaks no cycle, or a reach into the ledger's private functions fails
here before anyone has to find it in review."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Who may import whom (by top-level package or module prefix). accounts is the leaf; wallet sits on it;
# billing and referrals on the wallet; the console shell (onboarding, the user admin, commands, urls) on all.
FORBIDDEN = {
    "synstar/accounts": ("wallet", "billing", "referrals", "synstar.onboarding", "synstar.admin"),
    "wallet": ("billing", "referrals", "synstar.onboarding", "synstar.admin"),
    "billing": ("referrals", "synstar.onboarding", "synstar.admin"),
    "referrals": ("billing", "synstar.onboarding", "synstar.admin"),
}

# Function-level imports that break a real cycle (or must wait for the app registry), and why.
ALLOWED_LOCAL_IMPORTS = {
    ("wallet/services/webhooks.py", "wallet.tasks"): "the task module calls this service",
    ("billing/services/metering/__init__.py", "billing.tasks"): "the task module calls this service",
    ("wallet/services/autotopup.py", "wallet.tasks"): "the task module calls this service",
    ("wallet/apps.py", "wallet.services.autotopup"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/apps.py", "wallet.services.topups"): "AppConfig.ready: models are not loaded at import time",
    ("referrals/apps.py", "referrals.services"): "AppConfig.ready: models are not loaded at import time",
    ("referrals/apps.py", "wallet.services.topups"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/apps.py", "wallet.services.invoices"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/apps.py", "wallet.services.alerts"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/apps.py", "wallet.services.refund_requests"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/apps.py", "wallet.services.refunds"): "AppConfig.ready: models are not loaded at import time",
    ("wallet/services/alerts.py", "wallet.tasks"): "the task module calls this service",
    ("billing/apps.py", "billing.selectors.usage"): "AppConfig.ready: models are not loaded at import time",
    ("billing/apps.py", "wallet.selectors.history"): "AppConfig.ready: models are not loaded at import time",
}


def _sources():
    for top in ("synstar", "wallet", "billing", "referrals"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []


def test_dependencies_point_one_way():
    wrong = []
    for path, tree in _sources():
        for prefix, banned in FORBIDDEN.items():
            if not path.startswith(prefix + "/"):
                continue
            for _, module, _ in _imports(tree):
                if any(module == b or module.startswith(b + ".") for b in banned):
                    wrong.append(f"{path} imports {module}")
    assert wrong == []


def test_no_function_level_import_that_breaks_no_cycle():
    local = []
    for path, tree in _sources():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if (path, module) not in ALLOWED_LOCAL_IMPORTS:
                        local.append(f"{path}:{node.lineno} imports {module} inside {func.name}()")
    assert local == []


def test_only_the_ledger_writes_postings():
    private = []
    for path, tree in _sources():
        for _, module, names in _imports(tree):
            if module.startswith("wallet.services") and any(n.startswith("_") for n in names):
                private.append(f"{path} imports {module}: {names}")
    assert private == []


@pytest.mark.django_db
def test_the_wallet_calls_invite_rewards_through_its_registry():
    from referrals.services import reward_accrue, reward_reverse
    from wallet.services.topups import TOPUP_HOOKS

    assert reward_accrue in TOPUP_HOOKS.completed and reward_reverse in TOPUP_HOOKS.refunded
