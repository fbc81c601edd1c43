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
                self._reply(*server.route(method, self.path, raw, self.headers))

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
