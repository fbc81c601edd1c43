from django import forms
from django.utils.translation import gettext_lazy as _
from django_countries import countries
from django_countries.fields import LazyTypedChoiceField  # type: ignore[attr-defined]  # not in its stubs


class SignupExtraForm(forms.Form):
    """Extra signup fields (allauth ACCOUNT_SIGNUP_FORM_CLASS)."""

    country = LazyTypedChoiceField(
        label=_("Country"),
        choices=[("", _("Select your country"))] + list(countries),
        help_text=_("Decides which payment methods and offers are available to you."),
    )

    def signup(self, request, user) -> None:
        user.country = self.cleaned_data["country"]
        user.save(update_fields=["country"])
