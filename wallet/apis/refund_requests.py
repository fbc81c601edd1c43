"""GET/POST /api/v1/refund-requests: the user's refund requests, and a new one (session only)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from wallet.models import RefundRequest
from wallet.selectors.refund_requests import refund_requests_for
from wallet.services.refund_requests import refund_request_create


class RefundRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    order = serializers.CharField(source="order.order_no")
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=RefundRequest.Status.values)
    refundable_when_requested = MoneyField(source="quoted", allow_zero=True)
    refunded = serializers.SerializerMethodField(help_text="USD refunded once approved; null before")
    reject_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField(help_text="The target date for a decision")
    decided_at = serializers.DateTimeField(allow_null=True)

    def get_refunded(self, obj) -> str | None:
        return MoneyField().to_representation(obj.refund.base_removed) if obj.refund_id else None


class RefundRequestListCreateApi(APIView):
    permission_classes = [IsSession]  # asking for money back is an account action, not an API token's

    class InputSerializer(serializers.Serializer):
        order = serializers.CharField(max_length=32, help_text="Order number of a completed top-up")
        reason = serializers.CharField(max_length=2000)

    @extend_schema(responses=RefundRequestSerializer(many=True), summary="List refund requests")
    def get(self, request):
        return Response(RefundRequestSerializer(refund_requests_for(user=request.user)[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RefundRequestSerializer}, summary="Request a refund")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = refund_request_create(user=request.user, order_no=data.validated_data["order"], reason=data.validated_data["reason"])
        return Response(RefundRequestSerializer(created).data, status=status.HTTP_201_CREATED)
