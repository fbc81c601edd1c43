"""GET/POST /api/v1/invoice-requests: the user's invoice requests, and a new one (session only)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from synstar.api import IsSession, MoneyField
from wallet.models import InvoiceRequest
from wallet.selectors.documents import document_number
from wallet.selectors.invoices import invoice_requests_for
from wallet.services.invoices import invoice_request_create


class InvoiceRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    company_name = serializers.CharField()
    tax_id = serializers.CharField()
    delivery = serializers.ChoiceField(choices=InvoiceRequest.Delivery.values)
    email = serializers.CharField()
    mailing_address = serializers.CharField()
    amount = MoneyField(help_text="USD asked for")
    status = serializers.ChoiceField(choices=InvoiceRequest.Status.values)
    number = serializers.SerializerMethodField()
    invoiced_amount = MoneyField(allow_zero=True)
    reject_reason = serializers.CharField()
    orders = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)

    def get_number(self, obj) -> str:
        return document_number(obj)

    def get_orders(self, obj) -> list[str]:
        return [line.order.order_no for line in obj.lines.all()]

    def get_pdf_url(self, obj) -> str:
        return f"/invoices/{obj.pk}.pdf" if obj.status == InvoiceRequest.Status.ISSUED else ""


class InvoiceRequestListCreateApi(APIView):
    permission_classes = [IsSession]  # invoices carry company details: the console session only

    class InputSerializer(serializers.Serializer):
        company_name = serializers.CharField(max_length=200)
        tax_id = serializers.CharField(max_length=64, help_text="Tax identification number")
        orders = serializers.ListField(child=serializers.CharField(max_length=32), min_length=1, max_length=100,
                                       help_text="Order numbers of completed top-ups not yet invoiced")
        delivery = serializers.ChoiceField(choices=InvoiceRequest.Delivery.values)
        email = serializers.CharField(required=False, allow_blank=True, default="", max_length=254, help_text="For delivery=email; your account email when empty")
        mailing_address = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)

    @extend_schema(responses=InvoiceRequestSerializer(many=True), summary="List invoice requests")
    def get(self, request):
        return Response(InvoiceRequestSerializer(invoice_requests_for(user=request.user)[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: InvoiceRequestSerializer}, summary="Request an invoice")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        created = invoice_request_create(user=request.user, company_name=values["company_name"], tax_id=values["tax_id"],
                                         order_nos=values["orders"], delivery=values["delivery"], email=values["email"],
                                         mailing_address=values["mailing_address"])
        return Response(InvoiceRequestSerializer(created).data, status=status.HTTP_201_CREATED)
