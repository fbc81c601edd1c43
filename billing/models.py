"""Prices, billing tiers, token groups, API tokens, gateway keys and generations (DESIGN.md 5-6).

Prices are integer nanos: per-token prices per million tokens, request and unit prices per request or
unit. A generation (`gen-...`) is one metered API request: its hold, its usage report and its charge;
it is also the usage record the console lists.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing.pricing import DEFAULT_MAX_OUTPUT_TOKENS, MAX_TOKENS


class ModelPrice(models.Model):
    class Category(models.TextChoices):
        CHAT = "chat", "Chat"
        VISION = "vision", "Vision"
        IMAGE = "image", "Image generation"
        VIDEO = "video", "Video generation"
        TRANSCRIPTION = "transcription", "Audio transcription"
        TTS = "tts", "Text-to-speech"
        MUSIC = "music", "Music / voice"
        EMBEDDINGS = "embeddings", "Embeddings"
        RERANK = "rerank", "Rerank"
        OTHER = "other", "Other"

    class BillingType(models.TextChoices):
        PER_TOKEN = "per_token", "Per token"
        PER_REQUEST = "per_request", "Per request"
        PER_UNIT = "per_unit", "Per unit"

    class Unit(models.TextChoices):
        NONE = "", "—"
        IMAGE = "image", "image"
        SECOND = "second", "second"
        MINUTE = "minute", "minute"
        KCHARS = "1k_chars", "1k characters"
        TASK = "task", "task"

    name = models.SlugField(max_length=100, unique=True, help_text="The model id clients send, e.g. gpt-4o")
    display_name = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=60, blank=True)
    category = models.CharField(max_length=20, choices=Category.choices)
    billing_type = models.CharField(max_length=20, choices=BillingType.choices)
    # Per token: nanos per million tokens.
    input_per_million = models.BigIntegerField(default=0)
    output_per_million = models.BigIntegerField(default=0)
    cached_input_per_million = models.BigIntegerField(
        null=True, blank=True, help_text="Blank: cached input costs the same as input"
    )
    long_context_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Input tokens above which the long-context prices apply to the request"
    )
    long_input_per_million = models.BigIntegerField(null=True, blank=True)
    long_output_per_million = models.BigIntegerField(null=True, blank=True)
    long_cached_input_per_million = models.BigIntegerField(null=True, blank=True)
    # Per request / per unit.
    request_price = models.BigIntegerField(default=0, help_text="nanos per request")
    unit = models.CharField(max_length=16, choices=Unit.choices, blank=True, default="")
    unit_price = models.BigIntegerField(default=0, help_text="nanos per unit")
    minimum_charge = models.BigIntegerField(default=0, help_text="nanos; the listed cost is at least this")
    default_max_output_tokens = models.PositiveIntegerField(
        default=DEFAULT_MAX_OUTPUT_TOKENS,
        db_default=DEFAULT_MAX_OUTPUT_TOKENS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKENS)],
        help_text="Per token: the output a hold freezes for when the gateway sends no max_output_tokens",
    )
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort_order", "category", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(input_per_million__gte=0, output_per_million__gte=0, request_price__gte=0)
                & Q(unit_price__gte=0, minimum_charge__gte=0)
                & (Q(cached_input_per_million__isnull=True) | Q(cached_input_per_million__gte=0))
                & (Q(long_input_per_million__isnull=True) | Q(long_input_per_million__gte=0))
                & (Q(long_output_per_million__isnull=True) | Q(long_output_per_million__gte=0))
                & (Q(long_cached_input_per_million__isnull=True) | Q(long_cached_input_per_million__gte=0)),
                name="billing_modelprice_prices_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(default_max_output_tokens__gte=1), name="billing_modelprice_default_max_output_positive"
            ),
            models.CheckConstraint(
                condition=~Q(billing_type="per_unit") | ~Q(unit=""), name="billing_modelprice_per_unit_has_unit"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BillingTier(models.Model):
    name = models.CharField(max_length=60, unique=True)
    rate = models.DecimalField(
        max_digits=8, decimal_places=4, help_text="Multiplier on listed prices, e.g. 0.3 or 1.0"
    )
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(rate__gte=0), name="billing_tier_rate_nonnegative")]

    def __str__(self) -> str:
        return f"{self.name} (x{self.rate.normalize()})"


class TierModelRate(models.Model):
    """A per-model override of a tier's rate."""

    tier = models.ForeignKey(BillingTier, on_delete=models.CASCADE, related_name="overrides")
    model = models.ForeignKey(ModelPrice, on_delete=models.CASCADE, related_name="tier_overrides")
    rate = models.DecimalField(max_digits=8, decimal_places=4)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tier", "model"], name="billing_tiermodelrate_unique"),
            models.CheckConstraint(condition=Q(rate__gte=0), name="billing_tiermodelrate_rate_nonnegative"),
        ]


class TokenGroup(models.Model):
    name = models.SlugField(max_length=60, unique=True)
    description = models.CharField(max_length=255, blank=True)
    tier = models.ForeignKey(BillingTier, on_delete=models.PROTECT, related_name="groups")
    is_public = models.BooleanField(default=True, help_text="Open to every user; otherwise to the listed users")
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="token_groups")
    is_default = models.BooleanField(default=False, help_text="The group new tokens get when none is chosen")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="billing_one_default_group")
        ]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    group = models.ForeignKey(TokenGroup, on_delete=models.PROTECT, related_name="tokens")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the key; the key is never stored")
    key_prefix = models.CharField(max_length=16, help_text="Shown in lists to recognise the key")
    quota = models.BigIntegerField(null=True, blank=True, help_text="nanos; blank means unlimited")
    used = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    is_enabled = models.BooleanField(default=True)
    can_read_account = models.BooleanField(
        default=False,
        help_text="May read the account through the API (wallet, bills, referrals, every token's usage). "
        "Without it the token serves inference and sees only its own requests.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Model names; empty allows all")
    allowed_ips = models.JSONField(default=list, blank=True, help_text="IPs or CIDR ranges; empty allows all")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(used__gte=0) & Q(held__gte=0), name="billing_token_used_held_nonnegative"),
            models.CheckConstraint(
                condition=Q(quota__isnull=True) | Q(quota__gte=0), name="billing_token_quota_nonnegative"
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="billing_token_user_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def remaining(self) -> int | None:
        return None if self.quota is None else self.quota - self.used - self.held


class GatewayKey(models.Model):
    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    key_prefix = models.CharField(max_length=16)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    # DRF treats request.user as an authenticated principal.
    is_authenticated = True


class Generation(models.Model):
    """One metered request: hold, usage report and charge. Also the usage record."""

    # Filled by metering_hold on the row it returns, for the hold's answer (not stored).
    model_name: str = ""
    available: int | None = None

    class State(models.TextChoices):
        HELD = "held", "Held"
        REPORTED = "reported", "Reported"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    class Outcome(models.TextChoices):
        PENDING = "", "—"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class ChargeBasis(models.TextChoices):
        NONE = "", "—"
        REPORTED = "reported", "Reported usage"
        ESTIMATE = "estimate", "Estimate"

    public_id = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generations")
    token = models.ForeignKey(ApiToken, on_delete=models.PROTECT, related_name="generations")
    gateway = models.ForeignKey(GatewayKey, on_delete=models.PROTECT, related_name="generations")
    request_id = models.CharField(max_length=100, null=True, blank=True, help_text="The gateway's own id, if sent")
    hold = models.OneToOneField("wallet.Hold", on_delete=models.PROTECT, related_name="generation")
    model = models.ForeignKey(ModelPrice, on_delete=models.PROTECT, related_name="generations")
    group_name = models.CharField(max_length=60)
    endpoint = models.CharField(max_length=100)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    # Estimate at hold time.
    est_input_tokens = models.PositiveIntegerField(default=0)
    est_output_tokens = models.PositiveIntegerField(default=0)
    est_units = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal(0))
    rate = models.DecimalField(max_digits=8, decimal_places=4)
    price_snapshot = models.JSONField(help_text="The listed prices used, as charged")
    estimated_cost = models.BigIntegerField()
    # Usage report.
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    units = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # Charge.
    final_cost = models.BigIntegerField(null=True, blank=True)
    charge_basis = models.CharField(max_length=16, choices=ChargeBasis.choices, blank=True, default="")
    over_estimate = models.BooleanField(
        default=False, db_default=False, help_text="The reported usage costs more than the hold froze"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deadline = models.DateTimeField()
    reported_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(estimated_cost__gte=0), name="billing_generation_estimate_nonnegative"),
            models.CheckConstraint(
                condition=Q(final_cost__isnull=True) | Q(final_cost__gte=0), name="billing_generation_cost_nonnegative"
            ),
            models.UniqueConstraint(
                fields=["gateway", "request_id"],
                condition=Q(request_id__isnull=False),
                name="billing_generation_gateway_request_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="billing_gen_user_recent"),
            models.Index(fields=["user", "token", "-id"], name="billing_gen_user_token"),
            models.Index(fields=["user", "model", "-id"], name="billing_gen_user_model"),
            models.Index(fields=["user", "state", "-id"], name="billing_gen_user_state"),
            models.Index(fields=["deadline"], condition=Q(state="held"), name="billing_gen_held_deadline"),
            models.Index(fields=["reported_at"], condition=Q(state="reported"), name="billing_gen_reported"),
        ]

    def __str__(self) -> str:
        return self.public_id
