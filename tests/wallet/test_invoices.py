"""Receipts, invoice requests, issued invoices and credit notes (issue 13): what a user downloads and reads,
what admin issues, and that invoice numbers run without gaps under concurrency."""

import io

import pytest
from django.core import mail
from pypdf import PdfReader

from synstar.errors import Conflict, InvalidRequest, SynstarError
from synstar.money import usd
from tests.conftest import run_concurrently
from tests.factories import make_user
from wallet.models import CreditNote, DocumentCounter, InvoiceRequest, TopUpOrder
from wallet.selectors.invoices import invoiceable_orders
from wallet.services.invoices import invoice_issue, invoice_reject, invoice_request_create
from wallet.services.refunds import order_refund
from wallet.services.topups import order_complete, order_create

pytestmark = pytest.mark.django_db

COMPANY = "上海星辰科技有限公司"


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def completed_order(user, amount="100", payment_id="sbx_pi_1"):
    order = order_create(user=user, amount=usd(amount), method_code="stripe_card")  # the sandbox takes it
    order_complete(order_id=order.pk, amount_cents=int(usd(amount) // 10_000_000), currency="usd", payment_id=payment_id)
    order.refresh_from_db()
    return order


@pytest.fixture
def company(settings, topup_config):
    settings.SIGNUP_GRANT_USD = "0"
    settings.COMPANY_NAME = "SynStar Inc."
    settings.COMPANY_ADDRESS = "1 Example Street, Springfield"
    settings.COMPANY_TAX_ID = "US-12-3456789"
    settings.COMPANY_EMAIL = "billing@synstar.example"


def ask(user, orders, **kwargs):
    values = {"company_name": COMPANY, "tax_id": "91310000MA1FL0000X", "delivery": "email", "email": "", "mailing_address": ""}
    values.update(kwargs)
    return invoice_request_create(user=user, order_nos=[o.order_no for o in orders], **values)


# --- receipts -------------------------------------------------------------------------------------


def test_the_receipt_of_a_completed_top_up(client, company, django_capture_on_commit_callbacks):
    user = make_user(email="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        order = completed_order(user, "100", payment_id="sbx_pi_receipt")
    # emailed on completion, with the PDF
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["buyer@example.com"]
    assert order.order_no in mail.outbox[0].subject
    name, content, mimetype = mail.outbox[0].attachments[0]
    assert (name, mimetype) == (f"receipt-{order.order_no}.pdf", "application/pdf")
    # and from the bills page
    client.force_login(user)
    bills = client.get("/bills/").content.decode()
    assert f"/bills/{order.order_no}/receipt.pdf" in bills
    response = client.get(f"/bills/{order.order_no}/receipt.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    for expected in (order.order_no, "Receipt", order.method.name, "Payment amount", "$100.00 USD", "$103.00 USD",
                     "base $100.00 USD + bonus $3.00 USD", "sbx_pi_receipt", "SynStar Inc.", "1 Example Street, Springfield",
                     "US-12-3456789", "billing@synstar.example"):
        assert expected in text, expected
    assert pdf_text(content) == text


def test_no_receipt_for_an_unpaid_order_or_someone_elses(client, company):
    user, other = make_user(), make_user()
    pending = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    done = completed_order(user, "10")
    client.force_login(user)
    assert client.get(f"/bills/{pending.order_no}/receipt.pdf").status_code == 404
    assert f"/bills/{pending.order_no}/receipt.pdf" not in client.get("/bills/").content.decode()
    client.force_login(other)
    assert client.get(f"/bills/{done.order_no}/receipt.pdf").status_code == 404


# --- invoice requests -----------------------------------------------------------------------------


def test_request_issue_and_download_an_invoice(client, company, admin_user, django_capture_on_commit_callbacks):
    user = make_user(email="acct@example.com")
    first, second = completed_order(user, "100"), completed_order(user, "20")
    client.force_login(user)
    page = client.get("/invoices/").content.decode()
    assert first.order_no in page and second.order_no in page
    response = client.post("/invoices/", {"orders": [first.order_no, second.order_no], "company_name": COMPANY,
                                          "tax_id": "91310000MA1FL0000X", "delivery": "email", "email": "ap@example.cn"})
    assert response.status_code == 302
    request = InvoiceRequest.objects.get()
    assert (request.status, request.amount, request.email) == ("requested", usd("120"), "ap@example.cn")
    assert invoiceable_orders(user=user) == []  # both are on the request now
    page = client.get("/invoices/").content.decode()
    assert "Requested" in page and "Nothing to invoice" in page

    with django_capture_on_commit_callbacks(execute=True):
        issued = invoice_issue(request_id=request.pk, actor=admin_user)
    assert (issued.status, issued.number, issued.invoiced_amount) == ("issued", 1, usd("120"))
    assert mail.outbox[-1].to == ["ap@example.cn"] and "INV-000001" in mail.outbox[-1].subject
    assert mail.outbox[-1].attachments[0][0] == "invoice-INV-000001.pdf"
    page = client.get("/invoices/").content.decode()
    assert "Issued" in page and f"/invoices/{request.pk}.pdf" in page
    text = pdf_text(client.get(f"/invoices/{request.pk}.pdf").content)
    for expected in ("Invoice", "INV-000001", COMPANY, "91310000MA1FL0000X", first.order_no, second.order_no, "$120.00 USD",
                     "SynStar Inc.", "US-12-3456789"):
        assert expected in text, expected
    # issuing again changes nothing, and another user cannot download it
    assert invoice_issue(request_id=request.pk, actor=admin_user).number == 1
    client.force_login(make_user())
    assert client.get(f"/invoices/{request.pk}.pdf").status_code == 404


def test_bad_requests_are_refused_and_change_nothing(company):
    user, other = make_user(), make_user()
    order = completed_order(user)
    pending = order_create(user=user, amount=usd("10"), method_code="stripe_card")
    theirs = completed_order(other)
    cases = [
        dict(orders=[order], company_name="  "),
        dict(orders=[order], tax_id=""),
        dict(orders=[order], delivery="fax"),
        dict(orders=[order], delivery="email", email="not-an-email"),
        dict(orders=[order], delivery="paper", mailing_address=""),
        dict(orders=[]),
        dict(orders=[pending]),
        dict(orders=[theirs]),
    ]
    for case in cases:
        with pytest.raises(SynstarError) as exc:
            ask(user, case.pop("orders"), **case)
        assert exc.value.status in (400, 404, 409)
    assert InvoiceRequest.objects.count() == 0
    ask(user, [order], delivery="paper", mailing_address="Room 1, 100 Century Ave\nShanghai")
    with pytest.raises(Conflict) as exc:
        ask(user, [order])  # already on an open request
    assert exc.value.code == "already_invoiced"


def test_refunded_amounts_are_never_invoiced(company, admin_user):
    user = make_user()
    whole = completed_order(user, "100")
    part = completed_order(user, "50")
    order_refund(order_id=whole.pk, source="admin", key="w", actor=admin_user)  # all of it
    order_refund(order_id=part.pk, source="admin", key="p", cash=usd("20"), actor=admin_user)
    offered = {o.order_no: amount for o, amount in invoiceable_orders(user=user)}
    assert offered == {part.order_no: usd("30")}
    with pytest.raises(Conflict):
        ask(user, [whole])
    request = ask(user, [part])
    assert request.amount == usd("30")
    # refunded further while the request waits: the invoice shows what is left at issue time
    order_refund(order_id=part.pk, source="admin", key="p2", cash=usd("10"), actor=admin_user)
    issued = invoice_issue(request_id=request.pk, actor=admin_user)
    assert issued.invoiced_amount == usd("20") and CreditNote.objects.count() == 0


def test_nothing_left_to_invoice_takes_no_number(company, admin_user):
    user = make_user()
    order = completed_order(user, "10")
    request = ask(user, [order])
    order_refund(order_id=order.pk, source="admin", key="all", actor=admin_user)
    with pytest.raises(Conflict) as exc:
        invoice_issue(request_id=request.pk, actor=admin_user)
    assert exc.value.code == "nothing_to_invoice"
    assert DocumentCounter.objects.get(series="invoice").last_number == 0
    invoice_reject(request_id=request.pk, actor=admin_user, reason="The top-up was refunded.")
    later = ask(user, [completed_order(user, "5")])
    assert invoice_issue(request_id=later.pk, actor=admin_user).number == 1


def test_reject_with_a_reason_frees_the_top_ups(client, company, admin_user, django_capture_on_commit_callbacks):
    user = make_user(email="rej@example.com")
    order = completed_order(user)
    request = ask(user, [order])
    with pytest.raises(InvalidRequest):
        invoice_reject(request_id=request.pk, actor=admin_user, reason=" ")
    with django_capture_on_commit_callbacks(execute=True):
        invoice_reject(request_id=request.pk, actor=admin_user, reason="The tax ID does not match the company.")
    assert mail.outbox[-1].to == ["rej@example.com"] and "The tax ID does not match the company." in mail.outbox[-1].body
    client.force_login(user)
    page = client.get("/invoices/").content.decode()
    assert "Rejected" in page and "The tax ID does not match the company." in page
    assert [o.order_no for o, _ in invoiceable_orders(user=user)] == [order.order_no]
    with pytest.raises(Conflict):
        invoice_issue(request_id=request.pk, actor=admin_user)
    assert ask(user, [order]).status == "requested"


def test_a_refund_after_invoicing_writes_a_credit_note(client, company, admin_user, django_capture_on_commit_callbacks):
    user = make_user(email="cn@example.com")
    order = completed_order(user, "100")
    request = ask(user, [order])
    invoice_issue(request_id=request.pk, actor=admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        order_refund(order_id=order.pk, source="admin", key="after", cash=usd("40"), actor=admin_user)
    note = CreditNote.objects.get()
    assert (note.number, note.amount, note.invoice_id) == (1, usd("40"), request.pk)
    assert mail.outbox[-1].attachments[0][0] == "credit-note-CN-000001.pdf"
    client.force_login(user)
    assert f"/invoices/credit-notes/{note.pk}.pdf" in client.get("/invoices/").content.decode()
    text = pdf_text(client.get(f"/invoices/credit-notes/{note.pk}.pdf").content)
    for expected in ("Credit note", "CN-000001", "INV-000001", COMPANY, order.order_no, "$40.00 USD"):
        assert expected in text, expected
    # the rest refunded later: a second note for the rest, never more than was invoiced
    order_refund(order_id=order.pk, source="admin", key="rest", actor=admin_user)
    assert sorted(CreditNote.objects.values_list("number", "amount")) == [(1, usd("40")), (2, usd("60"))]
    order.refresh_from_db()
    assert order.status == TopUpOrder.Status.REFUNDED


def test_api_lists_and_creates_invoice_requests(client, company):
    user = make_user()
    order = completed_order(user)
    client.force_login(user)
    bad = client.post("/api/v1/invoice-requests", {"company_name": "ACME", "tax_id": "X1", "orders": [order.order_no],
                                                   "delivery": "paper"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "A paper invoice needs a mailing address."
    created = client.post("/api/v1/invoice-requests", {"company_name": "ACME", "tax_id": "X1", "orders": [order.order_no],
                                                       "delivery": "paper", "mailing_address": "1 Road"}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert (body["amount"], body["status"], body["orders"], body["number"], body["pdf_url"]) == ("100.00", "requested", [order.order_no], "", "")
    again = client.post("/api/v1/invoice-requests", {"company_name": "ACME", "tax_id": "X1", "orders": [order.order_no],
                                                     "delivery": "paper", "mailing_address": "1 Road"}, content_type="application/json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_invoiced"
    assert [r["id"] for r in client.get("/api/v1/invoice-requests").json()] == [body["id"]]


def test_admin_issues_and_rejects_from_the_queue(client, company, admin_user):
    user = make_user()
    one, two = ask(user, [completed_order(user)]), ask(user, [completed_order(user)])
    client.force_login(admin_user)
    url = "/admin/wallet/invoicerequest/"
    assert client.get(url).status_code == 200
    client.post(url, {"action": "invoice_issue_action", "_selected_action": [one.pk]})
    form = client.post(url, {"action": "invoice_reject_action", "_selected_action": [two.pk]})
    assert form.status_code == 200 and "reason" in form.content.decode()
    client.post(url, {"action": "invoice_reject_action", "_selected_action": [two.pk], "apply": "1", "reason": "Duplicate"})
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, one.number, two.status, two.reject_reason) == ("issued", 1, "rejected", "Duplicate")
    assert client.get(f"{url}{one.pk}/change/").status_code == 200
    listing = client.get(url).content.decode()
    assert f"{url}{one.pk}/pdf/" in listing  # admin prints paper invoices from here
    assert "INV-000001" in pdf_text(client.get(f"{url}{one.pk}/pdf/").content)
    assert client.get(f"{url}{two.pk}/pdf/").status_code == 404
    client.force_login(user)
    assert client.get(f"{url}{one.pk}/pdf/").status_code == 302  # not staff: to the admin login


# --- numbering under concurrency ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_invoice_numbers_run_without_gaps_when_issued_at_once(company):
    admin = make_user(is_staff=True)
    requests = []
    for _ in range(12):
        user = make_user()
        requests.append(ask(user, [completed_order(user, "10")]))
    empty_user = make_user()
    doomed = ask(empty_user, [completed_order(empty_user, "10")])
    order_refund(order_id=doomed.lines.get().order_id, source="admin", key="doomed", actor=admin)  # nothing left: fails

    ids = [r.pk for r in requests] + [doomed.pk]
    results, errors = run_concurrently(lambda pk: invoice_issue(request_id=pk, actor=admin), [(pk,) for pk in ids + ids])
    assert [e.code for e in errors] == ["nothing_to_invoice", "nothing_to_invoice"]
    numbers = sorted(InvoiceRequest.objects.filter(status="issued").values_list("number", flat=True))
    assert numbers == list(range(1, 13))
    assert DocumentCounter.objects.get(series="invoice").last_number == 12


def test_a_credit_note_only_for_money_that_went_out(company, admin_user, django_capture_on_commit_callbacks):
    """A refund waiting for the provider has no credit note yet: refused, it never gets one (its credits
    came back); confirmed, it gets its note then."""
    from wallet.services.refunds import refund_admin_start, refund_confirm, refund_fail

    user = make_user(email="pending-cn@example.com")
    order = completed_order(user, "100")
    invoice_issue(request_id=ask(user, [order]).pk, actor=admin_user)
    refused, _created = refund_admin_start(order_id=order.pk, key="refused", cash=usd("30"), actor=admin_user)
    assert refused.status == "pending" and not CreditNote.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        refund_fail(refund_id=refused.pk, reason="Charge has already been refunded.", refused=True)
    assert not CreditNote.objects.exists()  # no money went out: no note, and no number taken

    accepted, _created = refund_admin_start(order_id=order.pk, key="accepted", cash=usd("25"), actor=admin_user)
    assert not CreditNote.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        refund_confirm(refund_id=accepted.pk)
        refund_confirm(refund_id=accepted.pk)  # the provider's echo confirms it again: still one note
    assert list(CreditNote.objects.values_list("number", "amount")) == [(1, usd("25"))]
