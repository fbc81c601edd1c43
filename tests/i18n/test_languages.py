"""Which language a person reads, and that everything they read follows it: pages, flash and form errors,
API and relay error messages (their `code` stays English), account emails, and the CNY hint."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from starlette.testclient import TestClient

from billing.relay.app import relay_application
from synstar.accounts.models import User
from synstar.money import format_cny_indicative, usd

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


@pytest.mark.django_db
def test_accept_language_picks_chinese_for_a_visitor(client):
    page = client.get(reverse("account_login"), **ZH)
    text = page.content.decode()
    assert html_lang(page) == "zh-hans"
    assert "忘记密码？" in text and "注册账户" in text  # our layout
    assert "Forgot password?" not in text
    english = client.get(reverse("account_login"), **EN)
    assert html_lang(english) == "en" and "Forgot password?" in english.content.decode()


@pytest.mark.django_db
def test_the_console_reads_in_chinese(client, make_user):
    client.force_login(make_user(balance="12.34"))
    for name, words in [
        ("console:dashboard", ["概览", "当前余额", "冻结中", "最近动态", "$12.84"]),
        ("console:wallet", ["钱包", "充值", "使用兑换码", "邀请奖励", "金额（美元）"]),
        ("console:bills", ["账单", "暂无充值记录"]),
        ("console:tokens", ["API 令牌", "创建令牌", "不限配额"]),
        ("console:usage", ["用量记录", "暂无用量记录", "全部令牌"]),
        ("console:invite", ["邀请好友", "您的邀请链接"]),
        ("console:settings", ["设置", "跟随浏览器"]),
    ]:
        text = client.get(reverse(name), **ZH).content.decode()
        for word in words:
            assert word in text, f"{name}: {word!r} missing"


@pytest.mark.django_db
def test_the_switch_sets_the_language_and_saves_it_on_the_account(client, make_user):
    user = make_user()
    client.force_login(user)
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("console:wallet")}, **EN)
    assert response.status_code == 302 and response["Location"] == reverse("console:wallet")
    user.refresh_from_db()
    assert user.language == "zh-hans"
    # The account's setting wins over the browser's Accept-Language, on this device and any other.
    assert "钱包" in client.get(reverse("console:wallet"), **EN).content.decode()
    client.cookies.clear()
    client.force_login(user)
    assert html_lang(client.get(reverse("console:dashboard"), **EN)) == "zh-hans"
    # "Same as my browser" clears the setting and the cookie.
    client.post(reverse("set_language"), {"language": "", "next": reverse("console:settings")}, **EN)
    user.refresh_from_db()
    assert user.language == ""
    assert html_lang(client.get(reverse("console:dashboard"), **EN)) == "en"
    assert html_lang(client.get(reverse("console:dashboard"), **ZH)) == "zh-hans"


@pytest.mark.django_db
def test_a_visitor_switches_with_a_cookie(client):
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/accounts/login/"}, **EN)
    assert response.status_code == 302
    assert html_lang(client.get("/accounts/login/", **EN)) == "zh-hans"


@pytest.mark.django_db
def test_an_unknown_language_is_a_400_and_changes_nothing(client, make_user):
    user = make_user()
    client.force_login(user)
    response = client.post(reverse("set_language"), {"language": "xx-evil", "next": "/"})
    assert response.status_code == 400
    user.refresh_from_db()
    assert user.language == ""


@pytest.mark.django_db
def test_the_account_language_applies_at_sign_in(client, make_user):
    user = make_user(email="li@example.com")
    User.objects.filter(pk=user.pk).update(language="zh-hans")
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    response = client.post(reverse("account_login"), {"login": user.email, "password": "correct horse battery"}, follow=True, **EN)
    assert html_lang(response) == "zh-hans" and "当前余额" in response.content.decode()


@pytest.mark.django_db
def test_flash_messages_and_form_errors_are_translated(client, make_user):
    client.force_login(make_user())
    page = client.post(reverse("console:redeem"), {"code": "NOPE-NOPE-NOPE-NOPE"}, follow=True, **ZH).content.decode()
    assert "兑换码不存在，请检查后重试。" in page
    page = client.post(reverse("console:tokens"), {"name": "t", "group": "default", "quota": ""}, **ZH).content.decode()
    assert "请填写配额，或勾选“不限配额”。" in page


@pytest.mark.django_db
def test_api_error_messages_follow_accept_language_and_codes_stay_english(client):
    headers = {"HTTP_AUTHORIZATION": "Bearer sk-not-a-real-token"}
    zh = client.get("/api/v1/wallet", **headers, **ZH).json()["error"]
    en = client.get("/api/v1/wallet", **headers, **EN).json()["error"]
    assert zh["code"] == en["code"] and zh["type"] == en["type"]
    assert en["message"] == "Invalid API token." and zh["message"] == "API 令牌无效。"
    missing = client.get("/api/v1/no-such-thing", **ZH).json()["error"]
    assert missing["code"] == "not_found" and missing["message"].startswith("没有这个接口")


def test_relay_error_messages_follow_accept_language():
    with TestClient(relay_application(), raise_server_exceptions=False) as relay:
        zh = relay.post("/v1/chat/completions", json={"model": "x"}, headers={"Accept-Language": "zh-CN"}).json()["error"]
        en = relay.post("/v1/chat/completions", json={"model": "x"}, headers={"Accept-Language": "en"}).json()["error"]
        assert zh["code"] == en["code"] == "missing_api_key"
        assert en["message"].startswith("Send your API token") and zh["message"].startswith("请以")
        gone = relay.delete("/v1/chat/completions", headers={"Accept-Language": "zh-Hans"}).json()["error"]
        assert gone["code"] == "method_not_allowed" and "不支持" in gone["message"]


@pytest.mark.django_db
def test_signup_email_is_in_the_readers_language(client):
    client.post(reverse("account_signup"), {"email": "wang@example.com", "password1": "a long passphrase 42",
                                            "password2": "a long passphrase 42", "country": "CN"}, **ZH)
    assert len(mail.outbox) == 1
    assert re.search(r"[\u4e00-\u9fff]{4}", mail.outbox[0].subject + mail.outbox[0].body), mail.outbox[0].body


def test_indicative_cny_rounds_half_up_to_the_fen():
    assert format_cny_indicative(usd("100"), cny_per_usd="7.2") == "¥720.00"
    assert format_cny_indicative(usd("0.01"), cny_per_usd="7.25") == "¥0.07"  # 0.0725 -> 0.07
    assert format_cny_indicative(usd("0.03"), cny_per_usd="7.25") == "¥0.22"  # 0.2175 -> 0.22
    assert format_cny_indicative(usd("1234.56"), cny_per_usd="7.1234") == "¥8,794.26"


@pytest.mark.django_db
def test_the_cny_figure_shows_only_with_a_rate(client, make_user):
    client.force_login(make_user(country="CN"))
    url = reverse("console:topup-quote") + "?amount=100"
    assert "¥" not in client.get(url, **ZH).content.decode()
    with override_settings(CNY_PER_USD="7.2"):
        text = client.get(url, **ZH).content.decode()
    assert "约 ¥720.00" in text and "仅供参考" in text


@pytest.mark.django_db
def test_emails_sent_outside_a_request_use_the_accounts_language(make_user, django_capture_on_commit_callbacks):
    """A Celery task has no Accept-Language: alert emails follow the account's language setting."""
    from django.utils.translation import gettext_lazy

    from wallet.services.alerts import alert_email

    chinese, english = make_user(email="zh@example.com"), make_user(email="en@example.com")
    User.objects.filter(pk=chinese.pk).update(language="zh-hans")
    chinese.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        for user in (chinese, english):
            alert_email(user=user, subject=gettext_lazy("Your SynStar balance is low"), template="email/low_balance.txt",
                        context={"available": "1.00", "threshold": "5.00"})
    by_address = {m.to[0]: m for m in mail.outbox}
    assert by_address["zh@example.com"].subject == "[SynStar] 您的 SynStar 余额不足"
    assert "已低于提醒阈值 $5.00" in by_address["zh@example.com"].body
    assert by_address["en@example.com"].subject == "[SynStar] Your SynStar balance is low"
