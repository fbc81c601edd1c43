"""Invoice requests and refund requests in a real browser, desktop and phone (issue 13): the user asks from
the console, admin decides, the user sees the status and downloads the invoice."""

import io
import os

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from synstar.money import usd
from tests.browser.conftest import sign_in
from tests.factories import make_user
from wallet.demo import topup_config_load
from wallet.models import InvoiceRequest, RefundRequest
from wallet.services.invoices import invoice_issue
from wallet.services.ledger import debit_create
from wallet.services.refund_requests import refund_request_approve
from wallet.services.topups import order_complete, order_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPANY = "上海星辰科技有限公司"


def completed_order(user, amount: str):
    order = order_create(user=user, amount=usd(amount), method_code="stripe_card")  # the sandbox takes it
    order_complete(order_id=order.pk, amount_cents=int(usd(amount) // 10_000_000), currency="usd", payment_id="sbx_pi_b")
    return order


def shot(page, name: str, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page never scrolls sideways
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=f"{os.environ['SCREENSHOT_DIR']}/{name}-{width}.png", full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_invoice_request_flow(page, width, settings):
    settings.SIGNUP_GRANT_USD = "0"
    settings.COMPANY_NAME = "SynStar Inc."
    topup_config_load()
    user = make_user(email="invoices@example.com")
    admin = make_user(email="ops@example.com", is_staff=True)
    first, second = completed_order(user, "100"), completed_order(user, "20")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "invoices@example.com")
    page.goto("/bills/")
    expect(page.locator(f'#bills tr[data-order="{first.order_no}"] a.receipt')).to_be_visible()
    page.click(".page-head a:has-text('Invoices')")
    expect(page.locator("#invoiceable tbody tr")).to_have_count(2)
    page.check(f"#inv-{first.order_no}")
    page.check(f"#inv-{second.order_no}")
    page.fill("#company_name", COMPANY)
    page.fill("#tax_id", "91310000MA1FL0000X")
    page.fill("#email", "ap@example.cn")
    shot(page, "invoice-request-form", width)
    page.click("button:has-text('Request invoice')")
    expect(page.locator(".alert")).to_contain_text("Invoice request sent")
    request = InvoiceRequest.objects.get()
    row = page.locator(f'#invoice-requests tr[data-request="{request.pk}"]')
    expect(row).to_contain_text("Requested")
    expect(row).to_contain_text("$120.00")

    invoice_issue(request_id=request.pk, actor=admin)
    page.reload()
    expect(row).to_contain_text("Issued")
    link = row.locator("a", has_text="INV-000001")
    expect(link).to_be_visible()
    shot(page, "invoice-issued", width)
    pdf = page.request.get(link.get_attribute("href"))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.body())).pages[0].extract_text()
    assert "INV-000001" in text and COMPANY in text and "$120.00 USD" in text


@pytest.mark.parametrize("width", [1280, 390])
def test_refund_request_flow(page, width, settings):
    settings.SIGNUP_GRANT_USD = "0"
    settings.REFUND_TARGET_BUSINESS_DAYS = 3
    topup_config_load()
    user = make_user(email="refunds@example.com")
    admin = make_user(email="ops@example.com", is_staff=True)
    order = completed_order(user, "100")  # $100 + $3 bonus
    debit_create(user=user, amount=usd("40"), sink="revenue", kind="debit", idempotency_key="spent")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "refunds@example.com")
    page.goto("/bills/")
    page.click(".page-head a:has-text('Refunds')")
    expect(page.locator(".page-head")).to_contain_text("within 3 business days")
    row = page.locator(f'#refundable-orders tr[data-order="{order.order_no}"]')
    expect(row).to_contain_text("$60.00")  # refundable: $100 paid, $40 used; the $3 bonus goes back first
    expect(row).to_contain_text("$3.00")
    page.select_option("#order", order.order_no)
    page.fill("#reason", "We no longer need the credits.")
    shot(page, "refund-request-form", width)
    page.click("button:has-text('Request refund')")
    expect(page.locator(".alert")).to_contain_text("Nothing leaves your balance until it is approved")
    request = RefundRequest.objects.get()
    status = page.locator(f'#refund-requests tr[data-request="{request.pk}"]')
    expect(status).to_contain_text("Requested")
    expect(status).to_contain_text("decision by")
    shot(page, "refund-requested", width)

    refund_request_approve(request_id=request.pk, actor=admin)
    page.reload()
    expect(status).to_contain_text("Approved")
    expect(status).to_contain_text("$60.00")
    expect(row).to_contain_text("Nothing left")  # the used $40 stays; nothing else is refundable
    shot(page, "refund-approved", width)
