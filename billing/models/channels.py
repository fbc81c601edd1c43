"""The relay's upstream channels (DESIGN.md 10): where a model's requests are forwarded, how healthy that
place is, and the task-based requests (video) the relay follows until they finish."""

from django.db import models
from django.db.models import Q

from billing.models.catalog import ModelPrice
from billing.models.metering import Generation


class Channel(models.Model):
    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        SANDBOX = "sandbox", "Sandbox (answers locally, no upstream)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.URLField(
        max_length=300, blank=True, help_text="The upstream's API root, e.g. https://api.openai.com/v1 (blank for the sandbox)"
    )
    api_key = models.CharField(max_length=500, blank=True, help_text="Sent upstream as a Bearer key; never shown again")
    priority = models.IntegerField(default=0, help_text="Higher first; lower priorities are the fallback")
    weight = models.PositiveIntegerField(default=1, help_text="Share of traffic among channels of the same priority")
    connect_timeout = models.FloatField(default=10.0, help_text="Seconds to connect")
    read_timeout = models.FloatField(default=120.0, help_text="Seconds to wait for the first byte and between chunks")
    is_enabled = models.BooleanField(default=True)
    # Health: a channel that keeps failing is out of rotation until `open_until`, then probed back in.
    consecutive_failures = models.PositiveIntegerField(default=0)
    open_until = models.DateTimeField(null=True, blank=True, help_text="Out of rotation until this time")
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=1), name="billing_channel_weight_positive"),
            models.CheckConstraint(
                condition=Q(kind="sandbox") | ~Q(base_url=""), name="billing_channel_upstream_has_url"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ChannelModel(models.Model):
    """A model a channel serves, under the upstream's own name when it differs."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="models")
    model = models.ForeignKey(ModelPrice, on_delete=models.CASCADE, related_name="channels")
    upstream_name = models.CharField(max_length=100, blank=True, help_text="Blank: the same name as ours")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "model"], name="billing_channelmodel_unique")]

    def __str__(self) -> str:
        return f"{self.channel} / {self.model}"


class ChannelEvent(models.Model):
    """A channel's recent errors and health changes (admin shows the latest)."""

    class Kind(models.TextChoices):
        ERROR = "error", "Error"
        OPENED = "opened", "Taken out of rotation"
        RESTORED = "restored", "Back in rotation"
        PROBE_FAILED = "probe_failed", "Probe failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["channel", "-id"], name="billing_chanevent_recent")]


class RelayTask(models.Model):
    """A task-based request (video generation): held at submission, polled until it finishes, then settled."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    generation = models.OneToOneField(Generation, on_delete=models.PROTECT, related_name="relay_task")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="tasks")
    upstream_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, default="video")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    request = models.JSONField(default=dict, help_text="What the client asked (no keys)")
    result = models.JSONField(default=dict, blank=True, help_text="The upstream's last answer")
    error = models.TextField(blank=True, default="")
    polls = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_poll_at"], condition=Q(status__in=["queued", "in_progress"]), name="billing_relaytask_due")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.generation.public_id}"
