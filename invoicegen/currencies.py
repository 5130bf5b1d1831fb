"""Currencies as invoicegen bills in them: ISO 4217 codes, their minor units, a typical price's
size, and the currency of each country a Faker locale stands for. Plain data with no imports of
invoicegen's own, so the factories, ``stats`` and the console share one table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Currency:
    code: str  # ISO 4217
    exponent: int  # digits after the decimal point of its minor unit
    per_usd: float  # rough units per US dollar: the size of a typical price

    @property
    def minor_unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.exponent)


_CURRENCY_LIST = (
    Currency("USD", 2, 1),
    Currency("EUR", 2, 0.92),
    Currency("GBP", 2, 0.79),
    Currency("JPY", 0, 150),
    Currency("CHF", 2, 0.88),
    Currency("CAD", 2, 1.37),
    Currency("AUD", 2, 1.52),
    Currency("NZD", 2, 1.66),
    Currency("BRL", 2, 5.5),
    Currency("MXN", 2, 18),
    Currency("ARS", 2, 950),
    Currency("CLP", 0, 930),
    Currency("COP", 2, 4000),
    Currency("CNY", 2, 7.2),
    Currency("TWD", 2, 32),
    Currency("KRW", 0, 1350),
    Currency("INR", 2, 84),
    Currency("BDT", 2, 118),
    Currency("NPR", 2, 134),
    Currency("IDR", 2, 15800),
    Currency("PHP", 2, 57),
    Currency("THB", 2, 35),
    Currency("VND", 0, 25000),
    Currency("PLN", 2, 4),
    Currency("CZK", 2, 23),
    Currency("HUF", 2, 360),
    Currency("RON", 2, 4.6),
    Currency("MKD", 2, 57),
    Currency("SEK", 2, 10.5),
    Currency("NOK", 2, 10.8),
    Currency("DKK", 2, 6.9),
    Currency("RUB", 2, 92),
    Currency("UAH", 2, 41),
    Currency("GEL", 2, 2.7),
    Currency("AMD", 2, 390),
    Currency("AZN", 2, 1.7),
    Currency("ILS", 2, 3.7),
    Currency("IRR", 2, 42000),
    Currency("DZD", 2, 135),
    Currency("ZAR", 2, 18),
)
CURRENCIES = {currency.code: currency for currency in _CURRENCY_LIST}

#: ISO 3166 alpha-2 -> ISO 4217, for every country a Faker locale stands for.
COUNTRY_CURRENCY = {
    **dict.fromkeys(
        ("AT", "BE", "DE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "NL", "PT", "SI", "SK"), "EUR"
    ),
    "US": "USD", "GB": "GBP", "JP": "JPY", "CH": "CHF", "CA": "CAD", "AU": "AUD", "NZ": "NZD",
    "BR": "BRL", "MX": "MXN", "AR": "ARS", "CL": "CLP", "CO": "COP", "CN": "CNY", "TW": "TWD",
    "KR": "KRW", "IN": "INR", "BD": "BDT", "NP": "NPR", "ID": "IDR", "PH": "PHP", "TH": "THB",
    "VN": "VND", "PL": "PLN", "CZ": "CZK", "HU": "HUF", "RO": "RON", "MK": "MKD", "SE": "SEK",
    "NO": "NOK", "DK": "DKK", "RU": "RUB", "UA": "UAH", "GE": "GEL", "AM": "AMD", "AZ": "AZN",
    "IL": "ILS", "IR": "IRR", "DZ": "DZD", "ZA": "ZAR",
}  # fmt: skip
FALLBACK_CURRENCY = "USD"  # a country without its own entry here bills in dollars


def currency_of(code: str | None) -> Currency:
    """The currency of ``code``; dollars for a code without an entry (or none)."""
    return CURRENCIES.get(code or FALLBACK_CURRENCY, CURRENCIES[FALLBACK_CURRENCY])


def in_minor_units(amount: Decimal, code: str | None) -> Decimal:
    """``amount`` with as many decimals as ``code``'s minor unit has (JPY 1200, EUR 1200.00)."""
    return amount.quantize(currency_of(code).minor_unit)
