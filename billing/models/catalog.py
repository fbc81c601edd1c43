"""The catalog: model prices (integer nanos), billing tiers and per-model tier rates.

Per-token prices are per million tokens; request and unit prices per request or unit.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

MAX_TOKENS = 100_000_000  # per request; anything above is a client bug, not a request
DEFAULT_MAX_OUTPUT_TOKENS = 4096  # a new model's default_max_output_tokens


class ModelPrice(models.Model):
    class Category(models.TextChoices):
        CHAT = "chat", _("Chat")
        VISION = "vision", _("Vision")
        IMAGE = "image", _("Image generation")
        VIDEO = "video", _("Video generation")
        TRANSCRIPTION = "transcription", _("Audio transcription")
        TTS = "tts", _("Text-to-speech")
        MUSIC = "music", _("Music / voice")
        EMBEDDINGS = "embeddings", _("Embeddings")
        RERANK = "rerank", _("Rerank")
        OTHER = "other", _("Other")

    class BillingType(models.TextChoices):
        PER_TOKEN = "per_token", _("Per token")
        PER_REQUEST = "per_request", _("Per request")
        PER_UNIT = "per_unit", _("Per unit")

    class Unit(models.TextChoices):
        NONE = "", "—"
        IMAGE = "image", _("image")
        SECOND = "second", _("second")
        MINUTE = "minute", _("minute")
        KCHARS = "1k_chars", _("1k characters")
        TASK = "task", _("task")

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
