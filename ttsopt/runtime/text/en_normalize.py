"""English text normalisation as the official v2 front end does it (numbers, money, times, units → words).

The rules are applied in the official order; inflect spells the numbers. What is left afterwards is
only letters, spaces and ``' . , ? ! -``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

UNITS = {
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"), "L": ("liter", "liters"), "tbsp": ("tablespoon", "tablespoons"), "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"), "min": ("minute", "minutes"), "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"), "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
OPERATORS = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}
# Marks rewritten before anything else. (The official table also lists "[;:：，；]" → "," and '["’]' → "'",
# but escapes them as literal strings, so they never apply: ";" ":" "’" are removed by expand() instead.)
PRE_MARKS = {"。": ".", "！": "!", "？": "?"}

_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUPERSCRIPTS}]*)|(\.\d+[{_SUPERSCRIPTS}]*)|([A-Za-z][{_SUPERSCRIPTS}]*))"
_ARITHMETIC = re.compile(_OPERAND + r"\s+([\+\-\×÷=])\s+" + _OPERAND)
_NUMBERED_ITEM = re.compile(r"\b([0-9]+)\. ")
_NEGATIVE = re.compile(r"(?:^|\s+)(-)(\d+)")
_THOUSANDS = re.compile(r"([0-9][0-9\,]+[0-9])")
_CLOCK = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_MEASURE = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_MONEY = [(re.compile(r"£([0-9\.\,]*[0-9]+)"), ("pound", "pounds", "penny", "pence")),
          (re.compile(r"([0-9\.\,]*[0-9]+)£"), ("pound", "pounds", "penny", "pence")),
          (re.compile(r"\$([0-9\.\,]*[0-9]+)"), ("dollar", "dollars", "cent", "cents")),
          (re.compile(r"([(0-9\.\,]*[0-9]+)\$"), ("dollar", "dollars", "cent", "cents"))]
_DECIMAL = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")
_PUNCTUATION = "!?…,.-"


@cache
def _inflect():
    import inflect

    return inflect.engine()


def _numbered_item(m: re.Match) -> str:
    return _inflect().ordinal(m.group(1)) + ", "


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + OPERATORS[m.group(8)] + m.group(9)


def _clock(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    hours = hours - 12 if hours > 12 else hours
    spoken_hours = _inflect().number_to_words(hours)
    return f"{spoken_hours} o'clock {period}" if minutes == 0 else f"{spoken_hours} {_inflect().number_to_words(minutes)} {period}"


def _measure(m: re.Match) -> str:
    unit = m.group(3)
    amount = int(m.group(1).replace(unit, "").replace(".", ""))
    singular = m.group(2) is None and amount == 1
    return m.group(1).replace(unit, " " + UNITS[unit][0 if singular else 1])


def _money(names: tuple[str, str, str, str]):
    one, many, sub_one, sub_many = names

    def spell(m: re.Match) -> str:
        amount = m.group(1)
        parts = amount.split(".")
        if len(parts) > 2:
            return f"{amount} {many}"
        whole = int(parts[0]) if parts[0] else 0
        cents = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
        whole_words = f"{whole} {one if whole == 1 else many}"
        cent_words = f"{cents} {sub_one if cents == 1 else sub_many}"
        if whole and cents:
            return f"{whole_words} and {cent_words}"
        return whole_words if whole else cent_words if cents else f"zero {many}"

    return spell


def _decimal(m: re.Match) -> str:
    whole, fraction = m.group(1).split(".")[:2]
    return whole + " point " + " ".join(fraction)


def _fraction(m: re.Match) -> str:
    numerator, denominator = (int(x) for x in m.group(0).split("/"))
    words = _inflect().number_to_words(numerator)
    if denominator == 1:
        return words
    if denominator == 2:
        return f"{words} {'half' if numerator == 1 else 'halves'}"
    return f"{words} {_inflect().ordinal(_inflect().number_to_words(denominator))}{'s' if numerator > 1 else ''}"


def _integer(m: re.Match) -> str:
    """Years between 1001 and 2999 are read in pairs ("nineteen eighty-four"), as the official rule does."""
    n = int(m.group(0))
    engine = _inflect()
    if not 1000 < n < 3000:
        return engine.number_to_words(n, andword="")
    if n == 2000:
        return "two thousand"
    if 2000 < n < 2010:
        return "two thousand " + engine.number_to_words(n % 100)
    if n % 100 == 0:
        return engine.number_to_words(n // 100) + " hundred"
    return engine.number_to_words(n, andword="", zero="oh", group=2).replace(", ", " ")


def expand(text: str) -> str:
    """Numbers, money, times and units spelled out; accents stripped; anything unspeakable removed."""
    text = _NUMBERED_ITEM.sub(_numbered_item, text)
    while _ARITHMETIC.search(text):
        text = _ARITHMETIC.sub(_arithmetic, text)
    text = _NEGATIVE.sub(lambda m: f"negative {m.group(2)}", text)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _CLOCK.sub(_clock, text)
    text = _MEASURE.sub(_measure, text)
    for pattern, names in _MONEY:
        text = pattern.sub(_money(names), text)
    text = _DECIMAL.sub(_decimal, text)
    text = _FRACTION.sub(_fraction, text)
    text = _ORDINAL.sub(lambda m: _inflect().number_to_words(m.group(0)), text)
    text = _INTEGER.sub(_integer, text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = re.sub(r"[^ A-Za-z'.,?!-]", "", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    return re.sub(r"(?<!^)(?<![\s])([A-Z])", r" \1", text)  # "NASA" → "N A S A": capitals are spelled


def normalize(text: str) -> str:
    """The official English ``text_normalize``: marks mapped, :func:`expand`, repeated marks collapsed."""
    for mark, replacement in PRE_MARKS.items():
        text = text.replace(mark, replacement)
    text = expand(text)
    escaped = "".join(re.escape(p) for p in _PUNCTUATION)
    return re.sub(f"([{escaped}\\s])([{escaped}])+", r"\1", text)
