"""API: the pricing table."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.auth import ApiTokenAuthentication
from billing.selectors.catalog import price_display, pricing_table


class PriceFiguresSerializer(serializers.Serializer):
    """One model's prices in USD strings (listed, or for a group); the keys depend on the billing type."""

    input_per_million = serializers.CharField(required=False, allow_null=True)
    output_per_million = serializers.CharField(required=False, allow_null=True)
    cached_input_per_million = serializers.CharField(required=False, allow_null=True)
    long_context_threshold = serializers.IntegerField(required=False, help_text="Input tokens above which the long prices apply")
    long_input_per_million = serializers.CharField(required=False, allow_null=True)
    long_output_per_million = serializers.CharField(required=False, allow_null=True)
    per_request = serializers.CharField(required=False, allow_null=True)
    per_unit = serializers.CharField(required=False, allow_null=True)
    unit = serializers.CharField(required=False)
    minimum_charge = serializers.CharField(required=False, allow_null=True)


class GroupPriceSerializer(PriceFiguresSerializer):
    rate = serializers.CharField(help_text="The group's rate multiplier for this model")


class PricingModelSerializer(serializers.Serializer):
    model = serializers.CharField()
    display_name = serializers.CharField()
    category = serializers.CharField()
    billing_type = serializers.CharField()
    listed = PriceFiguresSerializer()
    groups = serializers.DictField(child=GroupPriceSerializer(), help_text="By group name: the groups the caller may use")


class PricingApi(APIView):
    authentication_classes = [SessionAuthentication, ApiTokenAuthentication]
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        """Documents the answer built below; tests/test_openapi.py checks that they agree."""

        currency = serializers.CharField()
        models = PricingModelSerializer(many=True)

    @extend_schema(summary="Model prices: listed and per group the caller may use", responses=OutputSerializer)
    def get(self, request):
        rows = pricing_table(user=request.user)
        return Response(
            {
                "currency": "USD",
                "models": [
                    {
                        "model": row.model.name,
                        "display_name": row.model.display_name or row.model.name,
                        "category": row.model.category,
                        "billing_type": row.model.billing_type,
                        "listed": price_display(row.snapshot, Decimal(1)),
                        "groups": {group.name: {"rate": str(rate.normalize()), **price_display(row.snapshot, rate)} for group, rate in row.group_rates},
                    }
                    for row in rows
                ],
            }
        )
