import csv
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from synstar.errors import RateLimited
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from wallet.models import Redemption, RedemptionCode, Transaction
from wallet.selectors.ledger import wallet_statistics
from wallet.services.redemptions import (
    ALPHABET,
    CodeAlreadyRedeemed,
    CodeCountryNotAllowed,
    CodeDisabled,
    CodeExpired,
    CodeNotEligible,
    CodeNotFound,
    CodeUsedUp,
    batch_generate,
    code_hash,
    code_redeem,
)


def generate(admin, **kwargs):
    params = {"campaign": "launch", "value": usd("5"), "count": 1, "created_by": admin}
    params.update(kwargs)
    batch, text = batch_generate(**params)
    codes = [row["code"] for row in csv.DictReader(io.StringIO(text))]
    return batch, codes


@pytest.mark.django_db
def test_batch_csv_has_unambiguous_codes_and_the_database_only_hashes(admin_user):
    batch, codes = generate(admin_user, count=50)
    assert len(set(codes)) == 50
    for code in codes:
        plain = code.replace("-", "")
        assert len(plain) == 16 and set(plain) <= set(ALPHABET) and not set(plain) & set("01OIL")
    stored = list(RedemptionCode.objects.filter(batch=batch).values_list("code_hash", flat=True))
    assert all(code.replace("-", "") not in h for h in stored for code in codes[:3])
    assert code_hash(codes[0]) in stored


@pytest.mark.django_db
def test_redeem_adds_the_value_once_and_says_so(admin_user):
    _, [code] = generate(admin_user)
    user = make_user()
    redemption = code_redeem(user=user, raw_code=code.lower().replace("-", " "), ip="10.0.0.1")
    assert redemption.amount == usd("5")
    assert wallet_statistics(user=user).balance == usd("5.50")
    assert Transaction.objects.get(kind="redemption").entries.count() == 2


def _nothing_written(user, before):
    assert Redemption.objects.count() == before
    assert wallet_statistics(user=user).balance == usd("0.50")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda a, u: ("ABCD-EFGH-JKMN-PQRS", {}), CodeNotFound),
        (lambda a, u: ("not a code!", {}), CodeNotFound),
        (lambda a, u: (generate(a, expires_at=timezone.now() - timedelta(minutes=1))[1][0], {}), CodeExpired),
        (lambda a, u: (generate(a, allowed_countries=["CN"])[1][0], {}), CodeCountryNotAllowed),
        (lambda a, u: (generate(a, allowed_users=[a])[1][0], {}), CodeNotEligible),
        (lambda a, u: (generate(a, new_accounts_only=True)[1][0], {"old": True}), CodeNotEligible),
    ],
)
def test_each_failure_says_why_and_writes_nothing(admin_user, setup, error):
    user = make_user(country="US")
    code, flags = setup(admin_user, user)
    if flags.get("old"):
        type(user).objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=30))
    before = Redemption.objects.count()
    with pytest.raises(error) as info:
        code_redeem(user=user, raw_code=code)
    assert info.value.message
    _nothing_written(user, before)


@pytest.mark.django_db
def test_used_up_already_redeemed_disabled_and_no_topup_only(admin_user, settings):
    batch, [code] = generate(admin_user, max_uses=2, per_account_limit=1)
    first, second, third = make_user(), make_user(), make_user()
    code_redeem(user=first, raw_code=code)
    with pytest.raises(CodeAlreadyRedeemed):
        code_redeem(user=first, raw_code=code)
    code_redeem(user=second, raw_code=code)
    with pytest.raises(CodeUsedUp):
        code_redeem(user=third, raw_code=code)
    _, [disabled] = generate(admin_user)
    RedemptionCode.objects.filter(code_hash=code_hash(disabled)).update(is_disabled=True)
    with pytest.raises(CodeDisabled):
        code_redeem(user=third, raw_code=disabled)

    _, [newbie] = generate(admin_user, no_topup_only=True)
    from wallet.demo import topup_config_load
    from wallet.services.topups import order_complete, order_create

    topup_config_load()
    order = order_create(user=third, amount=usd("5"), method_code="stripe_card")
    order_complete(order_id=order.pk, amount_cents=500, currency="usd")
    with pytest.raises(CodeNotEligible, match="not topped up"):
        code_redeem(user=third, raw_code=newbie)


@pytest.mark.django_db
def test_failed_attempts_are_rate_limited_per_user_and_per_ip(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 3
    settings.REDEEM_FAILURES_PER_IP = 5
    _, [good] = generate(admin_user)
    guesser = make_user()
    for _ in range(3):
        with pytest.raises(CodeNotFound):
            code_redeem(user=guesser, raw_code="AAAA-AAAA-AAAA-AAAA", ip="203.0.113.9")
    with pytest.raises(RateLimited) as info:
        code_redeem(user=guesser, raw_code=good, ip="198.51.100.1")  # even a good code, once limited
    assert info.value.status == 429
    # Another account from the same IP: the IP limit (5) still has two failures left, then blocks.
    other = make_user()
    for _ in range(2):
        with pytest.raises(CodeNotFound):
            code_redeem(user=other, raw_code="BBBB-BBBB-BBBB-BBBB", ip="203.0.113.9")
    with pytest.raises(RateLimited):
        code_redeem(user=other, raw_code=good, ip="203.0.113.9")
    assert code_redeem(user=other, raw_code=good, ip="198.51.100.7").amount == usd("5")
    cache.clear()
    assert Redemption.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_100_concurrent_redemptions_of_a_single_use_code_by_50_users_credit_once(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 1000
    settings.REDEEM_FAILURES_PER_IP = 1000
    _, [code] = generate(admin_user, max_uses=1)
    users = [make_user() for _ in range(50)]
    results, errors = run_concurrently(lambda u: code_redeem(user=u, raw_code=code), [(u,) for u in users * 2])
    assert len(results) == 1
    assert {type(e) for e in errors} <= {CodeUsedUp, CodeAlreadyRedeemed}, {repr(e) for e in errors}
    assert len(errors) == 99
    assert Transaction.objects.filter(kind="redemption").count() == 1
    assert sum(wallet_statistics(user=u).balance for u in users) == 50 * usd("0.50") + usd("5")


@pytest.mark.django_db(transaction=True)
def test_limit_10_redeemed_by_100_users_at_once_gives_exactly_10(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 1000
    _, [code] = generate(admin_user, max_uses=10)
    users = [make_user() for _ in range(100)]
    results, errors = run_concurrently(lambda u: code_redeem(user=u, raw_code=code), [(u,) for u in users])
    assert len(results) == 10 and all(isinstance(e, CodeUsedUp) for e in errors)
    assert RedemptionCode.objects.get().uses == 10
    assert len({r.user_id for r in results}) == 10


@pytest.mark.django_db(transaction=True)
def test_per_account_limit_holds_under_concurrency(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 1000
    _, [code] = generate(admin_user, max_uses=100, per_account_limit=3)
    user = make_user()
    results, errors = run_concurrently(lambda: code_redeem(user=user, raw_code=code), [()] * 20)
    assert len(results) == 3 and all(isinstance(e, CodeAlreadyRedeemed) for e in errors)
    assert wallet_statistics(user=user).balance == usd("15.50")


@pytest.mark.django_db
def test_redemption_api_and_console(client, admin_user):
    _, [code, other] = generate(admin_user, count=2, value=usd("2.25"))
    user = make_user()
    client.force_login(user)
    ok = client.post("/api/v1/redemptions", {"code": code}, content_type="application/json")
    assert ok.status_code == 201 and ok.json() == {"added": "2.25", "balance": "2.75", "campaign": "launch"}
    again = client.post("/api/v1/redemptions", {"code": code}, content_type="application/json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "code_already_redeemed"
    missing = client.post("/api/v1/redemptions", {"code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"}, content_type="application/json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "code_not_found"
    page = client.post("/wallet/redeem/", {"code": other}, follow=True).content.decode()
    assert "Code redeemed: $2.25 added to your balance." in page


@pytest.mark.django_db
def test_admin_generates_a_batch_and_downloads_the_csv_once(client, admin_user):
    from wallet.models import CodeBatch

    client.force_login(admin_user)
    form = {
        "campaign": "black-friday", "value": "10", "count": "25", "max_uses": "1", "per_account_limit": "1",
        "is_promotional": "on", "allowed_countries": ["CN", "HK"], "submission_key": "k-1",
    }
    response = client.post("/admin/wallet/codebatch/add/", form)
    batch = CodeBatch.objects.get()
    # Post/Redirect/Get: a confirmation page, not a filled-in form.
    assert response.status_code == 302 and response["Location"] == f"/admin/wallet/codebatch/{batch.pk}/generated/"
    page = client.get(response["Location"]).content.decode()
    assert "25 codes generated" in page and "$10.00" in page and "CN, HK" in page
    assert f"/admin/wallet/codebatch/{batch.pk}/generated/codes.csv" in page
    download = client.get(f"/admin/wallet/codebatch/{batch.pk}/generated/codes.csv")
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert len(rows) == 25 and rows[0]["value_usd"] == "10.00" and rows[0]["campaign"] == "black-friday"
    assert RedemptionCode.objects.count() == 25 and batch.allowed_countries == ["CN", "HK"]
    # The codes are shown once: a second download, the confirmation page and the batch page never show them.
    again = client.get(f"/admin/wallet/codebatch/{batch.pk}/generated/codes.csv", follow=True).content.decode()
    assert "already downloaded" in again and rows[0]["code"] not in again
    assert rows[0]["code"] not in client.get(f"/admin/wallet/codebatch/{batch.pk}/generated/").content.decode()
    assert rows[0]["code"] not in client.get(f"/admin/wallet/codebatch/{batch.pk}/change/").content.decode()
    # Sending the same form again (back button, double click) generates nothing.
    resent = client.post("/admin/wallet/codebatch/add/", form, follow=True)
    assert "already submitted" in resent.content.decode() and CodeBatch.objects.count() == 1
    bad = client.post("/admin/wallet/codebatch/add/", {"campaign": "x", "value": "-1", "count": "0", "max_uses": "1",
                                                       "per_account_limit": "1", "submission_key": "k-2"})
    assert bad.status_code == 200 and "must not be negative" in bad.content.decode()
    assert CodeBatch.objects.count() == 1
    # The corrected form (same key) is accepted: a refused submit does not use the key up.
    fixed = client.post("/admin/wallet/codebatch/add/", {"campaign": "x", "value": "1", "count": "1", "max_uses": "1",
                                                         "per_account_limit": "1", "submission_key": "k-2"})
    assert fixed.status_code == 302 and CodeBatch.objects.count() == 2


def _wrong_codes(n):
    # Well-formed codes that do not exist: each one reaches the database lookup when it is checked.
    return [f"{ALPHABET[i % 31]}{ALPHABET[(i // 31) % 31]}" + "Z" * 14 for i in range(n)]


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_burst_of_wrong_codes_checks_at_most_the_limit(admin_user, settings):
    assert "RedisCache" in settings.CACHES["default"]["BACKEND"], "run under `make test` (CACHE_URL on Redis)"
    settings.REDEEM_FAILURES_PER_USER = 5
    settings.REDEEM_FAILURES_PER_IP = 1000
    guesser = make_user()
    results, errors = run_concurrently(lambda c: code_redeem(user=guesser, raw_code=c, ip="203.0.113.9"),
                                       [(c,) for c in _wrong_codes(40)])
    checked = [e for e in errors if isinstance(e, CodeNotFound)]
    assert results == [] and len(checked) <= 5, f"{len(checked)} codes checked against a limit of 5"
    assert len(errors) == 40 and all(isinstance(e, (CodeNotFound, RateLimited)) for e in errors)
    assert len(checked) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_burst_from_one_ip_checks_at_most_its_limit(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 1000
    settings.REDEEM_FAILURES_PER_IP = 8
    users = [make_user() for _ in range(40)]
    _, errors = run_concurrently(lambda u, c: code_redeem(user=u, raw_code=c, ip="203.0.113.10"),
                                 list(zip(users, _wrong_codes(40))))
    assert len([e for e in errors if isinstance(e, CodeNotFound)]) <= 8


@pytest.mark.django_db
def test_successes_do_not_count_against_the_limit(admin_user, settings):
    settings.REDEEM_FAILURES_PER_USER = 2
    _, codes = generate(admin_user, count=5)
    user = make_user()
    for code in codes:  # five good codes in a row: none is a failure
        code_redeem(user=user, raw_code=code, ip="203.0.113.11")
    for _ in range(2):
        with pytest.raises(CodeNotFound):
            code_redeem(user=user, raw_code="AAAA-AAAA-AAAA-AAAA", ip="203.0.113.11")
    with pytest.raises(RateLimited):
        code_redeem(user=user, raw_code="AAAA-AAAA-AAAA-AAAA", ip="203.0.113.11")
