from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import CanReadAccount, IsSession, MoneyField
from synstar.errors import InvalidRequest
from synstar.i18n import lazy_format
from wallet.models import TopUpOrder
from wallet.services.topups import order_create


class BillSerializer(serializers.Serializer):
    order_no = serializers.CharField()
    method = serializers.CharField(source="method.name")
    provider = serializers.CharField()
    base_credits = MoneyField(source="amount")
    bonus_credits = MoneyField(source="bonus")
    total_credits = MoneyField()
    payment_amount = MoneyField(source="amount")
    currency = serializers.CharField()
    status = serializers.CharField()
    # a declared field (the metaclass moves it out of the class), not the Field.source attribute
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="checkout (paid by the user at the provider) or auto (auto top-up, a saved card)"
    )
    refunded = MoneyField(source="cash_refunded")
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    checkout_url = serializers.CharField()


class TopUpCreateApi(APIView):
    permission_classes = [IsSession]  # an API token cannot start a payment

    class InputSerializer(serializers.Serializer):
        amount = MoneyField(help_text="USD, e.g. \"100.00\"")
        method = serializers.CharField(help_text="Payment method code, e.g. stripe_card")

    @extend_schema(request=InputSerializer, responses={201: BillSerializer}, summary="Create a top-up order")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = order_create(user=request.user, amount=data.validated_data["amount"], method_code=data.validated_data["method"],
                             base_url=request.build_absolute_uri("/")[:-1])
        body = BillSerializer(order).data
        body["checkout_url"] = request.build_absolute_uri(order.checkout_url)
        return Response(body, status=status.HTTP_201_CREATED)


class BillListApi(APIView):
    permission_classes = [CanReadAccount]

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=TopUpOrder.Status.values)],
                   responses=BillSerializer(many=True), summary="List bills")
    def get(self, request):
        orders = TopUpOrder.objects.filter(user=request.user).select_related("method")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in TopUpOrder.Status.values:
                raise InvalidRequest(lazy_format(_("status must be one of %(join)s."), join=', '.join(TopUpOrder.Status.values)), code="invalid_status")
            orders = orders.filter(status=wanted)
        return Response(BillSerializer(orders[:200], many=True).data)
