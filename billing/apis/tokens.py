"""API: users' API tokens (session), and the calling token's own settings."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.auth import api_token
from billing.models import BudgetPeriod, TokenGroup
from billing.selectors.budgets import token_budget
from billing.selectors.tokens import tokens_for_user
from billing.services.tokens import token_create, token_delete, token_update
from synstar.api import IsApiToken, IsSession, MoneyField
from synstar.i18n import lazy_format

# --- tokens (session) -----------------------------------------------------------------------------


class TokenOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(source="key_prefix")
    group = serializers.CharField(source="group.name")
    quota = MoneyField(allow_null=True)
    unlimited = serializers.SerializerMethodField()
    used = MoneyField()
    held = MoneyField()
    is_enabled = serializers.BooleanField()
    can_read_account = serializers.BooleanField(help_text="May read the account through the API")
    expires_at = serializers.DateTimeField(allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField())
    allowed_ips = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    budget = MoneyField(allow_null=True, help_text="USD per budget period; null when the token has no budget")
    budget_period = serializers.ChoiceField(choices=BudgetPeriod.choices, help_text="day, week or month")
    rpm_limit = serializers.IntegerField(allow_null=True, help_text="Requests per minute; null for no limit")

    def get_unlimited(self, obj) -> bool:
        return obj.quota is None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.quota is None:
            data["quota"] = None
        if instance.budget is None:
            data["budget"] = None
        return data


class TokenInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    # A validated string, then a lookup: a slug-related field sent any text (NUL included) to the query.
    group = serializers.CharField(max_length=60, required=False, help_text="A token group's name")
    quota = MoneyField(allow_null=True, allow_zero=True, required=False, help_text="USD; null for unlimited")
    is_enabled = serializers.BooleanField(required=False)
    can_read_account = serializers.BooleanField(
        required=False, help_text="Let the token read the account (wallet, bills, referrals, all usage). Default false."
    )
    expires_at = serializers.DateTimeField(allow_null=True, required=False)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=200)
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=200)
    budget = MoneyField(allow_null=True, allow_zero=True, required=False,
                        help_text="USD per budget period (besides the quota); null for none")
    budget_period = serializers.ChoiceField(choices=BudgetPeriod.choices, required=False,
                                            help_text="When the budget resets: day, week or month (default month)")
    rpm_limit = serializers.IntegerField(min_value=1, max_value=1_000_000, allow_null=True, required=False,
                                         help_text="Requests per minute; null for no limit")

    def validate_group(self, value: str) -> TokenGroup:
        group = TokenGroup.objects.filter(name=value).first()
        if group is None:
            raise serializers.ValidationError(lazy_format(_("No token group named %(value)s."), value=repr(value)))
        return group


class TokenListApi(APIView):
    permission_classes = [IsSession]

    class CreatedSerializer(TokenOutputSerializer):
        key = serializers.CharField(help_text="Shown once; store it now")

    @extend_schema(responses=TokenOutputSerializer(many=True), summary="List API tokens")
    def get(self, request):
        return Response(TokenOutputSerializer(tokens_for_user(user=request.user), many=True).data)

    @extend_schema(request=TokenInputSerializer, responses={201: CreatedSerializer}, summary="Create an API token")
    def post(self, request):
        data = TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        token, raw = token_create(
            user=request.user,
            name=d["name"],
            group=d.get("group"),
            quota=d.get("quota"),
            expires_at=d.get("expires_at"),
            allowed_models=d.get("allowed_models"),
            allowed_ips=d.get("allowed_ips"),
            can_read_account=d.get("can_read_account", False),
            budget=d.get("budget"),
            budget_period=d.get("budget_period", BudgetPeriod.MONTH),
            rpm_limit=d.get("rpm_limit"),
        )
        if d.get("is_enabled") is False:
            token = token_update(token_id=token.pk, user=request.user, is_enabled=False)
        out = TokenOutputSerializer(token).data
        out["key"] = raw
        return Response(out, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    permission_classes = [IsSession]

    @extend_schema(request=TokenInputSerializer(partial=True), responses=TokenOutputSerializer, summary="Update an API token")
    def patch(self, request, token_id: int):
        data = TokenInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        token = token_update(token_id=token_id, user=request.user, **data.validated_data)
        return Response(TokenOutputSerializer(token).data)

    @extend_schema(responses={204: None}, summary="Delete an API token")
    def delete(self, request, token_id: int):
        token_delete(token_id=token_id, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyApi(APIView):
    """The calling sk- token's own settings, limits and usage (like OpenRouter's GET /api/v1/key): the
    lifetime quota, the budget of the current period and when it resets, the requests-per-minute limit."""

    permission_classes = [IsApiToken]

    class OutputSerializer(TokenOutputSerializer):
        remaining = MoneyField(allow_null=True, help_text="quota - used - held; null when unlimited")
        period_start = serializers.DateTimeField(source="budget_state.period_start",
                                                 help_text="Start of the current budget period")
        period_used = MoneyField(source="budget_state.period_used", help_text="Settled in the current period")
        budget_remaining = MoneyField(allow_null=True, source="budget_state.remaining",
                                      help_text="budget - period used - held; null without a budget")
        next_reset = serializers.DateTimeField(source="budget_state.resets_at",
                                               help_text="When the budget period resets (00:00 in the budget zone)")
        rate_limit = serializers.SerializerMethodField()

        @extend_schema_field({
            "type": "object", "nullable": True, "required": ["requests", "interval"],
            "properties": {"requests": {"type": "integer"}, "interval": {"type": "string", "description": "Always '1m'"}},
        })
        def get_rate_limit(self, obj) -> dict | None:
            return None if obj.rpm_limit is None else {"requests": obj.rpm_limit, "interval": "1m"}

        def to_representation(self, instance):
            data = super().to_representation(instance)
            if instance.quota is None:
                data["remaining"] = None
            if instance.budget is None:
                data["budget_remaining"] = None
            return data

    @extend_schema(responses=OutputSerializer, summary="The calling API token: limits, usage and the next budget reset")
    def get(self, request):
        token = api_token(request)
        assert token is not None  # IsApiToken
        token.budget_state = token_budget(token=token, now=timezone.now())  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(token).data)
