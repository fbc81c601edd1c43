"""Local stand-ins for Stripe's and Airwallex's HTTP APIs, and webhook signing with their real schemes.

Only the endpoints the client modules call are implemented, with the response shapes of the real APIs
(Stripe: form-encoded requests, JSON objects; Airwallex: JSON with decimal major-unit amounts).
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class _Server:
    def __init__(self):
        # Every request as (method, path, raw body, headers): tests assert on what was sent.
        self.requests: list[tuple[str, str, str, dict]] = []
        # Injected failures: path prefix -> (status, body); a str body is sent as-is (not JSON).
        self.failures: dict[str, tuple[int, object]] = {}
        handler = self._handler_class()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def calls(self, method: str, prefix: str) -> list[tuple[str, str, str, dict]]:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method, raw):
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((method, self.path, raw, headers))
                for prefix, (status, body) in server.failures.items():
                    if self.path.startswith(prefix):
                        return self._reply(status, body)
                answer = server.route(method, self.path, raw, self.headers)
                if answer is None:  # the answer is lost on the way: the connection closes without one
                    self.close_connection = True
                    return None
                self._reply(*answer)

            def do_GET(self):
                self._handle("GET", "")

            def do_POST(self):
                self._handle("POST", self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())

        return Handler


class FakeStripe(_Server):
    webhook_secret = "whsec_test_fake"
    api_key = "sk_test_fake"

    def __init__(self):
        self.sessions: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.refund_objects: dict[str, dict] = {}  # full refund objects, as refund.* events carry them
        self.idempotent: dict[str, dict] = {}
        self.refuse_refunds = False
        self.on_refund = None  # called with the refund object before Stripe answers the refund request
        # Saved cards and off-session charges (auto top-up).
        self.customers: dict[str, dict] = {}
        self.setup_intents: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.card_outcomes: dict[str, str] = {}  # payment method -> succeeded | card_declined | authentication_required | processing
        self.replies: dict[str, tuple[str, str, tuple]] = {}  # Idempotency-Key -> (path, body, answer): Stripe replays them
        self.on_payment_intent = None  # called with the new PaymentIntent before Stripe answers the create request
        self.drop_charge_answers = 0  # this many answers to POST /v1/payment_intents are lost (connection closed)
        self.lock = threading.Lock()
        super().__init__()

    @staticmethod
    def charge_id(payment_intent: str) -> str:
        return "ch_" + payment_intent[3:]

    def charge(self, payment_intent: str, *, amount: int, amount_refunded: int, currency: str = "usd") -> dict:
        """A charge object as charge.refunded carries it (API 2022-11-15+: `refunds` not expanded)."""
        return {"id": self.charge_id(payment_intent), "object": "charge", "amount": amount, "amount_captured": amount,
                "amount_refunded": amount_refunded, "currency": currency, "payment_intent": payment_intent,
                "paid": True, "captured": True, "refunded": amount_refunded >= amount, "status": "succeeded",
                "disputed": False, "metadata": {}}

    def refund_object(self, payment_intent: str, *, amount: int, status: str = "succeeded", refund_id: str | None = None,
                      metadata: dict | None = None, currency: str = "usd") -> dict:
        """A refund object (refund.created/updated/failed, charge.refund.updated) made outside our API."""
        return {"id": refund_id or f"re_{secrets.token_hex(10)}", "object": "refund", "amount": amount,
                "charge": self.charge_id(payment_intent), "currency": currency, "payment_intent": payment_intent,
                "status": status, "metadata": metadata or {}, "reason": None, "created": int(time.time()),
                "failure_reason": "expired_or_canceled_card" if status == "failed" else None}

    def dispute(self, payment_intent: str, *, amount: int, status: str, dispute_id: str = "dp_test_1",
                currency: str = "usd") -> dict:
        """A dispute object. status: warning_needs_response, warning_under_review, warning_closed,
        needs_response, under_review, won, lost."""
        return {"id": dispute_id, "object": "dispute", "amount": amount, "currency": currency,
                "charge": self.charge_id(payment_intent), "payment_intent": payment_intent, "reason": "fraudulent",
                "status": status, "is_charge_refundable": status.startswith("warning_"), "balance_transactions": [],
                "created": int(time.time()), "livemode": False, "metadata": {}}

    def route(self, method, path, raw, headers):
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        path, _, query = path.partition("?")
        if path.startswith(("/v1/customers", "/v1/setup_intents", "/v1/payment_intents", "/v1/payment_methods")) or (
                path == "/v1/checkout/sessions" and "mode=setup" in raw):
            return self._saved_cards(method, path, raw, query, headers)
        if method == "POST" and path == "/v1/checkout/sessions":
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            sid = f"cs_test_{secrets.token_hex(12)}"
            self.sessions[sid] = {
                "id": sid, "object": "checkout.session", "url": f"https://checkout.stripe.test/c/pay/{sid}",
                "status": "open", "payment_status": "unpaid", "mode": "payment",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "currency": form["line_items[0][price_data][currency]"],
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {"order_no": form.get("metadata[order_no]")},
                "payment_method_types": [form.get("payment_method_types[0]")],
                "payment_intent": None,
            }
            return 200, self.sessions[sid]
        if method == "POST" and path.startswith("/v1/checkout/sessions/") and path.endswith("/expire"):
            sid = path.split("/")[4]
            session = self.sessions.get(sid)
            if session is None:
                return 404, {"error": {"type": "invalid_request_error", "message": f"No such checkout.session: {sid}"}}
            if session["status"] != "open":
                return 400, {"error": {"type": "invalid_request_error",
                                       "message": f"Only Checkout Sessions with a status in [\"open\"] can be expired. This session has a status of {session['status']}."}}
            session["status"] = "expired"
            return 200, session
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            sid = path.rsplit("/", 1)[1]
            if sid not in self.sessions:
                return 404, {"error": {"type": "invalid_request_error", "message": f"No such checkout.session: {sid}"}}
            return 200, self.sessions[sid]
        if method == "POST" and path == "/v1/refunds":
            # Stripe replays the first answer for a repeated Idempotency-Key (for 24 hours).
            key = headers.get("Idempotency-Key")
            if key and key in self.idempotent:
                return 200, self.idempotent[key]
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            if self.refuse_refunds:
                return 400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                                       "message": "Charge has already been refunded."}}
            refund = {"id": f"re_{secrets.token_hex(10)}", "object": "refund", "amount": int(form["amount"]),
                      "payment_intent": form["payment_intent"], "status": "succeeded"}
            meta = {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")}
            self.refunds.append(refund)
            if key:
                self.idempotent[key] = refund
            self.refund_objects[refund["id"]] = {**refund, "currency": "usd", "metadata": meta, "charge": self.charge_id(
                form["payment_intent"]), "created": int(time.time()), "reason": None, "failure_reason": None}
            if self.on_refund is not None:
                self.on_refund(self.refund_objects[refund["id"]])  # e.g. deliver the echo while the caller waits
            return 200, refund
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}}

    # --- saved cards and off-session charges ------------------------------------------------------------

    @staticmethod
    def _not_found(kind: str, oid: str):
        return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "id",
                               "message": f"No such {kind}: '{oid}'"}}

    def _saved_cards(self, method, path, raw, query, headers):
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        key = headers.get("Idempotency-Key")
        if method == "POST" and key:
            with self.lock:
                if key in self.replies:
                    first_path, first_raw, answer = self.replies[key]
                    if (first_path, first_raw) != (path, raw):
                        return 400, {"error": {"type": "idempotency_error", "message": (
                            f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
                            f"Try using a key other than '{key}' if you meant to execute a different request.")}}
                    return self._maybe_drop(path, answer)
                answer = self._saved_cards_write(path, form)
                self.replies[key] = (path, raw, answer)
            return self._maybe_drop(path, answer)
        if method == "POST":
            with self.lock:
                return self._saved_cards_write(path, form)
        parts = path.split("/")
        if path.startswith("/v1/setup_intents/") and len(parts) == 4:
            intent = self.setup_intents.get(parts[3])
            if intent is None:
                return self._not_found("setup_intent", parts[3])
            if "payment_method" in parse_qs(query).get("expand[0]", []) and intent["payment_method"]:
                return 200, {**intent, "payment_method": self.payment_methods[intent["payment_method"]]}
            return 200, intent
        if path.startswith("/v1/payment_intents/") and len(parts) == 4:
            intent = self.payment_intents.get(parts[3])
            return (200, intent) if intent else self._not_found("payment_intent", parts[3])
        if path.startswith("/v1/customers/") and len(parts) == 4:
            customer = self.customers.get(parts[3])
            return (200, customer) if customer else self._not_found("customer", parts[3])
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}}

    def _maybe_drop(self, path, answer):
        if path == "/v1/payment_intents" and self.drop_charge_answers > 0:
            self.drop_charge_answers -= 1
            return None
        return answer

    def _saved_cards_write(self, path, form):
        parts = path.split("/")
        if path == "/v1/customers":
            cid = f"cus_{secrets.token_hex(7)}"
            self.customers[cid] = {
                "id": cid, "object": "customer", "address": None, "balance": 0, "created": int(time.time()), "currency": None,
                "default_source": None, "delinquent": False, "description": None, "discount": None, "email": form.get("email"),
                "invoice_prefix": secrets.token_hex(4).upper(), "livemode": False, "name": None, "phone": None,
                "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None},
                "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
                "next_invoice_sequence": 1, "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
            }
            return 200, self.customers[cid]
        if path == "/v1/checkout/sessions":  # mode=setup
            if form.get("customer") not in self.customers:
                return self._not_found("customer", form.get("customer", ""))
            sid = f"cs_test_{secrets.token_hex(12)}"
            self.sessions[sid] = {
                "id": sid, "object": "checkout.session", "url": f"https://checkout.stripe.test/c/pay/{sid}",
                "status": "open", "payment_status": "no_payment_required", "mode": "setup", "amount_total": None,
                "amount_subtotal": None, "currency": None, "customer": form["customer"], "customer_creation": None,
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
                "payment_method_types": [form.get("payment_method_types[0]")], "payment_intent": None, "setup_intent": None,
                "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"), "livemode": False,
                "created": int(time.time()), "expires_at": int(time.time()) + 86400, "subscription": None, "invoice": None,
            }
            return 200, self.sessions[sid]
        if path.startswith("/v1/payment_methods/") and path.endswith("/detach"):
            pm = self.payment_methods.get(parts[3])
            if pm is None:
                return self._not_found("payment_method", parts[3])
            pm["customer"] = None
            return 200, pm
        if path.startswith("/v1/payment_intents/") and path.endswith("/cancel"):
            intent = self.payment_intents.get(parts[3])
            if intent is None:
                return self._not_found("payment_intent", parts[3])
            if intent["status"] in ("succeeded", "canceled"):
                return 400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                       "message": f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}."}}
            intent.update(status="canceled", canceled_at=int(time.time()), cancellation_reason="requested_by_customer")
            return 200, intent
        if path == "/v1/payment_intents":
            return self._charge(form)
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL (POST: {path})"}}

    def _charge(self, form):
        """POST /v1/payment_intents with confirm=true and off_session=true: charge a saved card now."""
        pm = self.payment_methods.get(form.get("payment_method", ""))
        if pm is None or pm["customer"] != form.get("customer"):
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "payment_method",
                                   "message": f"No such PaymentMethod: '{form.get('payment_method')}'"}}
        assert form.get("confirm") == "true" and form.get("off_session") == "true", form
        pid = f"pi_{secrets.token_hex(12)}"
        outcome = self.card_outcomes.get(pm["id"], "succeeded")
        amount = int(form["amount"])
        intent = {
            "id": pid, "object": "payment_intent", "amount": amount, "amount_capturable": 0, "amount_details": {"tip": {}},
            "amount_received": amount if outcome == "succeeded" else 0, "application": None, "application_fee_amount": None,
            "automatic_payment_methods": None, "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": f"{pid}_secret_{secrets.token_hex(12)}", "confirmation_method": "automatic",
            "created": int(time.time()), "currency": form["currency"], "customer": form["customer"],
            "description": form.get("description"), "last_payment_error": None,
            "latest_charge": self.charge_id(pid) if outcome in ("succeeded", "card_declined", "authentication_required") else None,
            "livemode": False, "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "next_action": None, "on_behalf_of": None, "payment_method": pm["id"], "payment_method_options": {"card": {}},
            "payment_method_types": ["card"], "processing": None, "receipt_email": None, "review": None,
            "setup_future_usage": None, "shipping": None, "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": {"succeeded": "succeeded", "processing": "processing"}.get(outcome, "requires_payment_method"),
            "transfer_data": None, "transfer_group": None,
        }
        self.payment_intents[pid] = intent
        if self.on_payment_intent is not None:
            self.on_payment_intent(intent)
        if outcome in ("succeeded", "processing"):
            return 200, intent
        # A decline, or the bank asking for authentication (3-D Secure) that cannot happen off-session: Stripe
        # answers 402 with a card_error that carries the PaymentIntent (now requires_payment_method).
        messages = {"card_declined": ("Your card has insufficient funds.", "insufficient_funds"),
                    "authentication_required": ("Your card was declined. This transaction requires authentication.",
                                                "authentication_required"),
                    "expired_card": ("Your card has expired.", None)}
        message, decline_code = messages[outcome]
        error = {"code": outcome, "decline_code": decline_code, "doc_url": f"https://stripe.com/docs/error-codes/{outcome.replace('_', '-')}",
                 "message": message, "payment_method": pm, "type": "card_error", "charge": intent["latest_charge"]}
        intent["last_payment_error"] = {k: v for k, v in error.items() if k != "charge"}
        return 402, {"error": {**error, "payment_intent": intent,
                               "request_log_url": f"https://dashboard.stripe.com/test/logs/req_{secrets.token_hex(7)}"}}

    def complete_setup(self, session_id: str, *, brand: str = "visa", last4: str = "4242", exp_month: int = 12, exp_year: int = 2034) -> dict:
        """What happens at Stripe when the user enters a card on the setup page: a PaymentMethod attached to
        the customer, a succeeded SetupIntent (usage off_session), and the session complete."""
        session = self.sessions[session_id]
        pm_id, seti_id = f"pm_{secrets.token_hex(12)}", f"seti_{secrets.token_hex(12)}"
        self.payment_methods[pm_id] = {
            "id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified", "type": "card",
            "billing_details": {"address": {"city": None, "country": "US", "line1": None, "line2": None, "postal_code": "94102",
                                            "state": None}, "email": None, "name": "Jenny Rosen", "phone": None},
            "card": {"brand": brand, "checks": {"address_line1_check": None, "address_postal_code_check": "pass", "cvc_check": "pass"},
                     "country": "US", "display_brand": brand, "exp_month": exp_month, "exp_year": exp_year,
                     "fingerprint": secrets.token_hex(8), "funding": "credit", "last4": last4,
                     "networks": {"available": [brand], "preferred": None}, "three_d_secure_usage": {"supported": True}, "wallet": None},
            "created": int(time.time()), "customer": session["customer"], "livemode": False, "metadata": {},
        }
        self.setup_intents[seti_id] = {
            "id": seti_id, "object": "setup_intent", "application": None, "automatic_payment_methods": None,
            "cancellation_reason": None, "client_secret": f"{seti_id}_secret_{secrets.token_hex(12)}", "created": int(time.time()),
            "customer": session["customer"], "description": None, "flow_directions": None, "last_setup_error": None,
            "latest_attempt": f"setatt_{secrets.token_hex(12)}", "livemode": False, "mandate": None,
            "metadata": {}, "next_action": None, "on_behalf_of": None, "payment_method": pm_id,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}}, "payment_method_types": ["card"],
            "single_use_mandate": None, "status": "succeeded", "usage": "off_session",
        }
        session.update(status="complete", setup_intent=seti_id)
        return session

    def pay(self, session_id: str) -> dict:
        """What happens at Stripe when the customer pays: the session completes."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid", payment_intent=f"pi_{secrets.token_hex(10)}")
        return session

    def event(self, event_type: str, obj: dict) -> bytes:
        return json.dumps({"id": f"evt_{secrets.token_hex(12)}", "object": "event", "type": event_type,
                           "created": int(time.time()), "data": {"object": obj}}).encode()

    def sign(self, body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
        """Stripe's scheme: Stripe-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>." + body))."""
        t = timestamp or int(time.time())
        v1 = hmac.new((secret or self.webhook_secret).encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={v1}"


class FakeAirwallex(_Server):
    """Airwallex's API as its reference describes it: a login that answers a token with `expires_at`
    (30 minutes), 401 for a missing, unknown or expired token, JSON bodies only with
    `Content-Type: application/json`, a dated `x-api-version`, and `request_id` on every write
    (a reused request_id replays the first answer for the same body and is refused for another)."""

    client_id, api_key, webhook_secret = "awx_client", "awx_key", "awx_whsec_fake"
    token_ttl = 30 * 60

    def __init__(self):
        self.intents: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (unix time)
        self.logins = 0
        self.replies: dict[str, tuple[str, tuple]] = {}  # request_id -> (body, answer)
        super().__init__()

    def expire_tokens(self):
        """What happens when a token outlives its expires_at (or is revoked): every use answers 401."""
        for token in self.tokens:
            self.tokens[token] = 0

    def route(self, method, path, raw, headers):
        version = headers.get("x-api-version")
        if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", version):
            return 400, {"code": "invalid_argument", "message": f"Unsupported x-api-version {version}"}
        if method == "POST" and raw and (headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return 415, {"code": "unsupported_media_type", "message": "Content type must be application/json"}
        if path == "/api/v1/authentication/login":
            if method != "POST":
                return 405, {"code": "method_not_allowed"}
            if headers.get("x-client-id") != self.client_id or headers.get("x-api-key") != self.api_key:
                return 401, {"code": "credentials_invalid", "message": "Invalid credentials"}
            token = secrets.token_hex(16)
            self.tokens[token] = time.time() + self.token_ttl
            self.logins += 1
            expires = datetime.fromtimestamp(self.tokens[token], tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
            return 201, {"token": token, "expires_at": expires}
        auth = headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.tokens.get(token, 0) <= time.time():
            return 401, {"code": "unauthorized", "message": "Access denied, authentication failed"}
        body = json.loads(raw, parse_float=Decimal) if raw else {}
        if method == "POST":
            rid = body.get("request_id")
            if not rid:
                return 400, {"code": "validation_error", "message": "request_id must not be blank"}
            if rid in self.replies:
                first_raw, answer = self.replies[rid]
                if json.loads(first_raw) != json.loads(raw):
                    return 400, {"code": "duplicate_request", "message": f"request_id {rid} was already used"}
                return answer
            answer = self._write(path, body)
            if answer[0] < 400:
                self.replies[rid] = (raw, answer)
            return answer
        if method == "GET" and path.startswith("/api/v1/pa/payment_intents/"):
            iid = path.rsplit("/", 1)[1]
            return (200, self.intents[iid]) if iid in self.intents else (404, {"code": "resource_not_found"})
        return 404, {"code": "resource_not_found"}

    def _write(self, path, body):
        if path == "/api/v1/pa/payment_intents/create":
            iid = f"int_{secrets.token_hex(10)}"
            self.intents[iid] = {"id": iid, "request_id": body["request_id"], "client_secret": secrets.token_hex(16),
                                 "amount": float(Decimal(body["amount"])), "currency": body["currency"],
                                 "merchant_order_id": body["merchant_order_id"], "return_url": body.get("return_url"),
                                 "status": "REQUIRES_PAYMENT_METHOD"}
            return 201, self.intents[iid]
        if path.startswith("/api/v1/pa/payment_intents/") and path.endswith("/cancel"):
            intent = self.intents.get(path.split("/")[5])
            if intent is None:
                return 404, {"code": "resource_not_found"}
            if intent["status"] in ("SUCCEEDED", "CANCELLED"):
                return 400, {"code": "invalid_status_for_operation",
                             "message": f"The PaymentIntent status {intent['status']} is invalid for the operation cancel."}
            intent["status"] = "CANCELLED"
            return 200, intent
        if path == "/api/v1/pa/refunds/create":
            refund = {"id": f"rfd_{secrets.token_hex(8)}", "request_id": body["request_id"], "amount": float(Decimal(body["amount"])),
                      "payment_intent_id": body["payment_intent_id"], "status": "RECEIVED", "currency": "USD",
                      "metadata": body.get("metadata") or {}, "created_at": "2026-11-22T00:00:00+0000"}
            self.refunds.append(refund)
            return 201, refund
        return 404, {"code": "resource_not_found"}

    def pay(self, intent_id: str) -> dict:
        self.intents[intent_id]["status"] = "SUCCEEDED"
        return self.intents[intent_id]

    def event(self, name: str, obj: dict) -> bytes:
        return json.dumps({"id": f"evt_awx_{secrets.token_hex(10)}", "name": name, "account_id": "acct_test",
                           "data": {"object": obj}, "created_at": "2026-11-22T00:00:00+0000"}).encode()

    def sign(self, body: bytes, *, secret: str | None = None, timestamp_ms: int | None = None) -> dict:
        """Airwallex's scheme: x-signature = hex(HMAC-SHA256(secret, x-timestamp + body)), timestamp in ms."""
        ts = str(timestamp_ms or int(time.time() * 1000))
        sig = hmac.new((secret or self.webhook_secret).encode(), ts.encode() + body, hashlib.sha256).hexdigest()
        return {"HTTP_X_TIMESTAMP": ts, "HTTP_X_SIGNATURE": sig}
