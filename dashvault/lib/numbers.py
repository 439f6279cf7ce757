"""Human display of metric values: "1,234,567", "€1,234.50", "12.5%", "1h 05m".

Pure functions, no Django. English conventions (comma thousands separator, point decimal),
the same on every screen so a TV and a laptop show the same text.
"""

from __future__ import annotations

import math

MISSING = "–"  # en dash: no value

# Symbol placed before the number; codes not listed here are written after it ("1,234 ABC").
_PREFIX_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "KRW": "₩",
    "AUD": "A$",
    "CAD": "CA$",
    "NZD": "NZ$",
    "HKD": "HK$",
    "MXN": "MX$",
    "BRL": "R$",
    "ILS": "₪",
    "TRY": "₺",
    "UAH": "₴",
    "PHP": "₱",
    "VND": "₫",
    "NGN": "₦",
    "CHF": "CHF ",
}
_SUFFIX_SYMBOLS = {
    "SEK": "kr",
    "NOK": "kr",
    "DKK": "kr",
    "ISK": "kr",
    "PLN": "zł",
    "CZK": "Kč",
    "HUF": "Ft",
    "RON": "lei",
}
# ISO 4217 currencies without minor units.
_NO_DECIMALS = {"JPY", "KRW", "ISK", "VND", "HUF", "CLP", "PYG", "UGX"}

# From this size on decimals are noise on a dashboard.
_WHOLE_FROM = 10_000


def format_value(value: float | None, unit: str, currency: str = "") -> str:
    """`value` for display in `unit` (metrics.models.Unit: number, currency, percent,
    duration); an unknown unit is shown as a number.

    - None, NaN and infinity: "–".
    - number: thousands separators, at most 2 decimals with trailing zeros dropped, none from
      10,000 on: "1,234,567", "1,234.5", "0.33".
    - currency (ISO 4217 `currency`, any case): the common symbol before or after the number
      ("€1,234.50", "1,234 kr"), the code after it when unknown ("1,234 ABC"), a plain number
      without a code. Cents show as two digits when there are any (none for currencies
      without minor units, such as JPY, and none from 10,000 on).
    - percent: the value is in percent points: 12.5 -> "12.5%".
    - duration: the value is in seconds: "45s", "3m 20s", "1h 05m", "2d 03h"; under a minute
      at most one decimal ("2.5s").
    A negative value carries a leading "-" ("-€5", "-3m 20s").
    """
    if value is None or not math.isfinite(value):
        return MISSING
    if unit == "currency":
        return _money(value, currency.strip().upper())
    if unit == "percent":
        return _number(value) + "%"
    if unit == "duration":
        return _duration(value)
    return _number(value)


def _number(value: float, decimals: int = 2) -> str:
    if abs(value) >= _WHOLE_FROM:
        decimals = 0
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _money(value: float, code: str) -> str:
    if code in _NO_DECIMALS or abs(value) >= _WHOLE_FROM:
        amount = _number(round(value), 0)
    else:
        cents = round(abs(value) * 100) % 100
        amount = f"{abs(value):,.2f}" if cents else f"{round(abs(value)):,}"
        if amount.strip("0.,") and value < 0:
            amount = "-" + amount
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    if not code:
        return sign + digits
    if code in _PREFIX_SYMBOLS:
        return f"{sign}{_PREFIX_SYMBOLS[code]}{digits}"
    return f"{sign}{digits} {_SUFFIX_SYMBOLS.get(code, code)}"


def _duration(seconds: float) -> str:
    sign = "-" if seconds < 0 and round(abs(seconds), 1) > 0 else ""
    seconds = abs(seconds)
    if round(seconds) < 60:
        if seconds < 10:
            return f"{sign}{_number(round(seconds, 1), 1)}s"
        return f"{sign}{round(seconds)}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m {secs:02d}s"
