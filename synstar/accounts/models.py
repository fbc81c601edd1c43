from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        UNDER_REVIEW = "under_review", _("Under review")
        SUSPENDED = "suspended", _("Suspended")

    class ReviewReason(models.TextChoices):
        NONE = "", "—"
        PAYMENT = "payment", _("Payment")
        RISK = "risk", _("Risk")
        COMPLIANCE = "compliance", _("Compliance")

    username = None  # type: ignore[assignment]  # the email is the login
    email = models.EmailField("email address", unique=True)
    country = CountryField(blank=True, help_text="Decides the payment methods and code regions offered.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    review_reason = models.CharField(max_length=16, choices=ReviewReason.choices, blank=True, default="")
    status_note = models.TextField(blank=True, default="", help_text="Why the account has this status.")
    # The console's language (a code of settings.LANGUAGES); empty: the browser's (Accept-Language).
    language = models.CharField(max_length=16, blank=True, default="", choices=settings.LANGUAGES)
    # An IANA zone ("Asia/Shanghai") the console shows times in; empty: the browser's own zone.
    time_zone = models.CharField(max_length=64, blank=True, default="", help_text="Empty: the browser's time zone.")

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []  # noqa: RUF012

    objects = UserManager()  # type: ignore[misc,assignment]  # email-based manager

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            # Under review always says why (payment, risk or compliance); other statuses never do.
            models.CheckConstraint(
                condition=(
                    models.Q(status="under_review") & ~models.Q(review_reason="")
                    | ~models.Q(status="under_review") & models.Q(review_reason="")
                ),
                name="accounts_user_review_reason_iff_under_review",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class UserStatusChange(models.Model):
    """Who changed an account's status, when, and why. Append-only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=16, choices=User.Status.choices)
    new_status = models.CharField(max_length=16, choices=User.Status.choices)
    review_reason = models.CharField(max_length=16, choices=User.ReviewReason.choices, blank=True)
    note = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user}: {self.old_status} -> {self.new_status}"
