import itertools

from synstar.money import usd
from synstar.onboarding import user_create
from wallet.models import SystemAccount, Transaction
from wallet.services.ledger import credit_create

_counter = itertools.count(1)


def make_user(*, email: str | None = None, country: str = "US", balance: str | None = None, is_staff: bool = False):
    """A user made the way signup makes them (ledger accounts and signup grant included)."""
    n = next(_counter)
    user = user_create(
        email=email or f"user{n}-{id(object())}@example.com",
        password="correct horse battery",
        country=country,
        is_staff=is_staff,
    )
    if balance is not None:
        fund(user, balance)
    return user


def fund(user, amount: str, *, key: str | None = None):
    return credit_create(
        user=user,
        amount=usd(amount),
        source=SystemAccount.PROMOTIONS,
        kind=Transaction.Kind.GRANT,
        idempotency_key=key or f"test-fund:{user.pk}:{next(_counter)}",
    )
