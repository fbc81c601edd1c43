"""API: the gateway's metering (hold, usage report) and users' usage records."""

import csv
from dataclasses import replace
from decimal import Decimal

from django.http import StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.auth import GatewayAuthentication, IsGateway, api_token, token_sees_all_usage
from billing.models import Generation
from billing.selectors.catalog import price_display
from billing.selectors.metering import UsageFilters, generation_for_user, usage_records
from billing.services.metering import metering_hold, metering_report
from billing.services.metering.pricing import MAX_TOKENS, MAX_UNITS, Usage
from synstar.api import MoneyField, SharedFieldsSerializer, TokenScope
from synstar.errors import InvalidRequest, NotFound
from synstar.money import format_usd
from wallet.selectors.ledger import wallet_statistics

# --- metering (gateway) ---------------------------------------------------------------------------


class GenerationOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    state = serializers.CharField()
    model = serializers.CharField(source="model.name")
    endpoint = serializers.CharField()
    token = serializers.SerializerMethodField()
    group = serializers.CharField(source="group_name")
    rate = serializers.DecimalField(max_digits=8, decimal_places=4)
    listed_price = serializers.SerializerMethodField()
    estimate = serializers.SerializerMethodField()
    estimated_cost = MoneyField()
    usage = serializers.SerializerMethodField()
    status = serializers.CharField(source="outcome")
    error = serializers.CharField()
    final_cost = MoneyField(allow_null=True)
    charge_basis = serializers.CharField()
    over_estimate = serializers.BooleanField(help_text="The reported usage cost more than the hold froze")
    created_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    reported_at = serializers.DateTimeField(allow_null=True)
    expired_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)

    def get_listed_price(self, obj) -> dict:
        return {"billing_type": obj.price_snapshot["billing_type"], **price_display(obj.price_snapshot, Decimal(1))}

    def get_token(self, obj) -> dict:
        return {"id": obj.token_id, "name": obj.token.name, "prefix": obj.token.key_prefix}

    def get_estimate(self, obj) -> dict:
        return {"input_tokens": obj.est_input_tokens, "max_output_tokens": obj.est_output_tokens, "units": _units(obj.est_units)}

    def get_usage(self, obj) -> dict | None:
        if obj.reported_at is None:
            return None
        return {
            "input_tokens": obj.input_tokens,
            "output_tokens": obj.output_tokens,
            "cached_tokens": obj.cached_tokens,
            "units": None if obj.units is None else _units(obj.units),
        }

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.final_cost is None:
            data["final_cost"] = None
        return data


def _units(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class HoldCreateApi(APIView):
    authentication_classes = [GatewayAuthentication]
    permission_classes = [IsGateway]

    class InputSerializer(SharedFieldsSerializer):
        token = serializers.CharField(help_text="The end user's sk- API token")
        model = serializers.CharField(max_length=100)
        endpoint = serializers.CharField(max_length=100, default="/v1/chat/completions")
        input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, default=0)
        max_output_tokens = serializers.IntegerField(
            min_value=0, max_value=MAX_TOKENS, required=False, allow_null=True,
            help_text="Per token: the most output the request may produce; none (or 0) means the model's default",
        )
        units = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal(0), max_value=MAX_UNITS, default=Decimal(0))
        client_ip = serializers.IPAddressField(required=False, allow_null=True)
        request_id = serializers.CharField(max_length=100, required=False, allow_null=True)

    class OutputSerializer(SharedFieldsSerializer):
        """What the gateway needs at once; the full record is at GET /v1/generation."""

        id = serializers.CharField(source="public_id")
        state = serializers.CharField()
        model = serializers.SerializerMethodField()
        group = serializers.CharField(source="group_name")
        rate = serializers.DecimalField(max_digits=8, decimal_places=4)
        estimated_cost = MoneyField()
        max_output_tokens = serializers.IntegerField(source="est_output_tokens", help_text="The output held for")
        available = serializers.SerializerMethodField(help_text="Available balance after this hold")
        deadline = serializers.DateTimeField()

        def get_model(self, obj) -> str:
            return getattr(obj, "model_name", None) or obj.model.name

        def get_available(self, obj) -> str:
            available = getattr(obj, "available", None)
            if available is None:  # a retried hold: read it
                available = wallet_statistics(user=obj.user).available
            return format_usd(available, places=None)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, summary="Pre-deduct a request")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        generation = metering_hold(
            gateway=request.auth,
            token_key=d["token"],
            model_name=d["model"],
            endpoint=d["endpoint"],
            input_tokens=d["input_tokens"],
            max_output_tokens=d.get("max_output_tokens"),
            units=d["units"],
            client_ip=d.get("client_ip"),
            request_id=d.get("request_id"),
        )
        return Response(self.OutputSerializer(generation).data, status=status.HTTP_201_CREATED)


class UsageReportApi(APIView):
    authentication_classes = [GatewayAuthentication]
    permission_classes = [IsGateway]

    class InputSerializer(SharedFieldsSerializer):
        status = serializers.ChoiceField(choices=["succeeded", "failed"])
        input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
        output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
        cached_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
        units = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal(0), max_value=MAX_UNITS, required=False)
        error = serializers.CharField(required=False, allow_blank=True, max_length=4000)

    class OutputSerializer(SharedFieldsSerializer):
        id = serializers.CharField(source="public_id")
        state = serializers.CharField()
        over_estimate = serializers.BooleanField(
            help_text="The reported usage costs more than the hold froze; it is charged in full all the same"
        )

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, summary="Report actual usage")
    def post(self, request, public_id: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        usage_keys = {"input_tokens", "output_tokens", "cached_tokens", "units"}
        usage = None
        if usage_keys & d.keys():
            usage = Usage(
                input_tokens=d.get("input_tokens", 0),
                output_tokens=d.get("output_tokens", 0),
                cached_tokens=d.get("cached_tokens", 0),
                units=d.get("units", Decimal(0)),
            )
        generation = metering_report(
            gateway=request.auth, public_id=public_id, outcome=d["status"], usage=usage, error=d.get("error", "")
        )
        return Response(self.OutputSerializer(generation).data, status=status.HTTP_202_ACCEPTED)


# --- end users ------------------------------------------------------------------------------------


class GenerationApi(APIView):
    """Auth: the console session or any sk- token; a token without the "Read account" permission sees only
    its own requests."""

    @extend_schema(
        parameters=[OpenApiParameter("id", str, required=True, description="gen-...")],
        responses=GenerationOutputSerializer,
        summary="One request's billing detail",
    )
    def get(self, request):
        public_id = request.query_params.get("id", "")
        if not public_id.startswith("gen-"):
            raise InvalidRequest(_("Pass ?id=gen-..."), code="invalid_generation_id")
        token = api_token(request)
        token_id = None if token_sees_all_usage(request) or token is None else token.pk
        generation = generation_for_user(user=request.user, public_id=public_id, token_id=token_id)
        if generation is None:
            raise NotFound(_("No such generation."), code="generation_not_found")
        return Response(GenerationOutputSerializer(generation).data)


class UsageFilterSerializer(serializers.Serializer):
    token = serializers.IntegerField(required=False, min_value=1)
    model = serializers.CharField(required=False, max_length=100)
    state = serializers.ChoiceField(choices=Generation.State.choices, required=False)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    before = serializers.IntegerField(required=False, min_value=1, help_text="Cursor: the id to page before")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)

    def filters(self) -> UsageFilters:
        d = self.validated_data
        return UsageFilters(
            token_id=d.get("token"), model=d.get("model"), state=d.get("state"),
            date_from=d.get("date_from"), date_to=d.get("date_to"),
        )


class UsageListApi(APIView):
    """Auth: the console session or any sk- token; a token without the "Read account" permission sees only
    its own requests."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField(source="public_id")
        time = serializers.DateTimeField(source="created_at")
        token = serializers.CharField(source="token.name")
        group = serializers.CharField(source="group_name")
        model = serializers.CharField(source="model.name")
        endpoint = serializers.CharField()
        input_tokens = serializers.IntegerField(allow_null=True, help_text="null until usage is reported")
        output_tokens = serializers.IntegerField(allow_null=True)
        cached_tokens = serializers.IntegerField(allow_null=True)
        units = serializers.DecimalField(max_digits=18, decimal_places=6, allow_null=True)
        rate = serializers.DecimalField(max_digits=8, decimal_places=4)
        estimated_cost = MoneyField()
        cost = MoneyField(source="final_cost", allow_null=True)
        state = serializers.CharField()
        status = serializers.CharField(source="outcome")
        error = serializers.CharField()
        charge_basis = serializers.CharField()
        over_estimate = serializers.BooleanField()

        def to_representation(self, instance):
            data = super().to_representation(instance)
            if instance.final_cost is None:
                data["cost"] = None
            return data

    @extend_schema(
        parameters=[UsageFilterSerializer],
        responses=inline_serializer(
            "UsagePage",
            {
                "results": OutputSerializer(many=True),
                "next_before": serializers.IntegerField(allow_null=True, help_text="Pass as ?before= for the next page"),
            },
        ),
        summary="Usage records",
    )
    def get(self, request):
        params = UsageFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = params.validated_data["limit"]
        filters = params.filters()
        if not token_sees_all_usage(request):
            token = api_token(request)
            assert token is not None  # a session sees all usage
            own = token.pk
            if filters.token_id not in (None, own):
                raise TokenScope(
                    _('This API token sees only its own requests; allow "Read account" for it to see every token\'s.')
                )
            filters = replace(filters, token_id=own)
        rows = usage_records(
            user=request.user, filters=filters, before_id=params.validated_data.get("before"), limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return Response(
            {"results": self.OutputSerializer(rows, many=True).data, "next_before": rows[-1].pk if more else None}
        )




def usage_csv_response(rows_iter) -> StreamingHttpResponse:
    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())
    header = ["id", "time", "token", "group", "model", "endpoint", "input_tokens", "output_tokens", "cached_tokens",
              "units", "rate", "estimated_cost_usd", "cost_usd", "state", "status", "error", "charge_basis", "over_estimate"]

    def generate():
        yield writer.writerow(header)
        for g in rows_iter:
            yield writer.writerow([
                g.public_id, g.created_at.isoformat(), g.token.name, g.group_name, g.model.name, g.endpoint,
                g.input_tokens, g.output_tokens, g.cached_tokens, g.units, g.rate,
                format_usd(g.estimated_cost, places=None),
                "" if g.final_cost is None else format_usd(g.final_cost, places=None),
                g.state, g.outcome, g.error, g.charge_basis, "yes" if g.over_estimate else "",
            ])

    response = StreamingHttpResponse(generate(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return response
