"""The one table of currency facts: what billctl stores, how finely it bills, and what Stripe wants.

Taken from Stripe's "Supported currencies" page (docs.stripe.com/currencies): the presentment
currencies, the zero-decimal ones, the three-decimal ones and the "special cases". A currency that is
not in this table is one Stripe does not charge in, so billctl refuses tenants and plans in it.

Each entry has three numbers of decimal places:

- ``exponent``: billctl's minor unit, the integer stored in the database and shown (USD 2: cents).
  It never changes for a currency, so stored amounts keep their meaning.
- ``stripe_exponent``: the minor unit of Stripe's API ``amount`` fields (USD 2, JPY 0, KWD 3).
- ``billing_decimals``: the finest amount Stripe can actually charge. Every invoice line is rounded
  once, half-up, to this (DESIGN.md invariant 3), so what billctl finalizes is what Stripe charges.

Stripe's rules, as the table encodes them:

- Zero-decimal currencies (BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF): amounts are
  whole units, sent as they are (¥500 is ``500``).
- Three-decimal currencies (BHD JOD KWD OMR TND): Stripe takes amounts in thousandths but requires the
  last digit to be 0 ("round amounts to the nearest ten": KWD 5.124 must be sent as 5120 or 5130), so
  billctl bills them to 0.01 and sends multiples of 10.
- ISK: effectively zero-decimal (whole krónur only) but, for backwards compatibility, still a
  two-decimal currency in the API: amounts must be divisible by 100 (5 ISK is ``500``).
- UGX: the same rule as ISK (zero-decimal, sent as a two-decimal value ending in 00: 5 UGX is
  ``500``). billctl has always stored UGX in whole shillings, so it multiplies by 100 when sending.
- HUF and TWD: Stripe treats them as zero-decimal for payouts only; charges (and so invoices) may
  carry two decimals. Nothing changes for billing; the payout rule is Stripe's business.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CurrencyFacts:
    code: str
    exponent: int  # billctl's stored minor unit (decimal places)
    stripe_exponent: int  # decimal places of Stripe's API amounts
    billing_decimals: int  # the finest amount Stripe charges: invoice lines round to this
    rule: str = ""  # Stripe's special case, in words, for messages and the docs

    @property
    def stripe_factor(self) -> int:
        """Stripe API amount = stored minor units × this."""
        return 10 ** (self.stripe_exponent - self.exponent)

    @property
    def stripe_step(self) -> int:
        """Every Stripe API amount in this currency is a multiple of this."""
        return 10 ** (self.stripe_exponent - self.billing_decimals)


ZERO_DECIMAL = ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF")
THREE_DECIMAL = ("BHD", "JOD", "KWD", "OMR", "TND")
TWO_DECIMAL = (
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM",
    "BBD", "BDT", "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CNY", "COP", "CRC", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "JMD", "KES",
    "KGS", "KHR", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MKD", "MMK", "MNT",
    "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SEK", "SGD",
    "SHP", "SLE", "SOS", "SRD", "STD", "SZL", "THB", "TJS", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "USD", "UYU", "UZS", "WST", "XCD", "YER", "ZAR", "ZMW",
)

_WHOLE = "whole units only, sent to Stripe as two-decimal amounts ending in 00"
CURRENCIES: dict[str, CurrencyFacts] = {
    **{c: CurrencyFacts(c, 2, 2, 2) for c in TWO_DECIMAL},
    **{c: CurrencyFacts(c, 0, 0, 0) for c in ZERO_DECIMAL},
    **{c: CurrencyFacts(c, 3, 3, 2, "sent to Stripe in thousandths ending in 0") for c in THREE_DECIMAL},
    "ISK": CurrencyFacts("ISK", 2, 2, 0, _WHOLE),
    "UGX": CurrencyFacts("UGX", 0, 2, 0, _WHOLE),
    "HUF": CurrencyFacts("HUF", 2, 2, 2, "Stripe pays HUF out in whole forints only"),
    "TWD": CurrencyFacts("TWD", 2, 2, 2, "Stripe pays TWD out in whole dollars only"),
}


def facts(code: str) -> CurrencyFacts | None:
    return CURRENCIES.get(code.upper()) if isinstance(code, str) else None
