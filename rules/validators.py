"""Checks that regexes cannot express (presidio's ``invalidate_result``).

A rule's regex may name a validator; a regex hit whose digits fail it is not a finding
(a random 18-digit order number is not an ID card, a 16-digit one is not a bank card).
Digits may be typed as Chinese numerals, financial ones included (壹壹零…, 幺三八…): each
validator reads them as the digits they stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_NUMERALS = str.maketrans("零〇一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖", "0012345678912123456789")


def _digits(text: str) -> str:
    return "".join(ch for ch in text.translate(_NUMERALS) if ch.isdigit() or ch in "xX").upper()


def cn_id_checksum(text: str) -> bool:
    """GB 11643-1999 check character of an 18-character resident ID number."""
    number = _digits(text)
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17]


def cn_id_birth_date(text: str) -> bool:
    """The shape of a resident ID number: 18 characters, a region code not starting with 0 and a
    real birth date (1900–2099) in characters 7–14 — what a hand-typed number keeps when its check
    character is mistyped."""
    number = _digits(text)
    if len(number) != 18 or not number[:17].isdigit() or number[0] == "0":
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year < 2100


def cn_id(text: str) -> bool:
    """A resident ID number: the shape of one with a valid check character."""
    return cn_id_birth_date(text) and cn_id_checksum(text)


def mobile_number(text: str) -> bool:
    """A mainland mobile number however written: 11 digits 1[3-9]…, any numeral system, groups
    separated by a comma or 、 (read out: 一三八，一二三四，五六七八), the letter o at most three times
    for 0 (15o1234…) — more o's than that is a word, not a number."""
    if text.lower().count("o") > 3:
        return False
    number = _digits(text.lower().replace("o", "0"))
    return len(number) == 11 and number[0] == "1" and number[1] in "3456789"


def luhn(text: str) -> bool:
    """Luhn (mod 10) check used by bank card numbers."""
    number = _digits(text)
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def bank_card(text: str) -> bool:
    """A Luhn-valid card number that is not also a valid resident ID number."""
    return luhn(text) and not cn_id_checksum(text)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "cn_id_checksum": cn_id_checksum,
    "cn_id_birth_date": cn_id_birth_date,
    "cn_id": cn_id,
    "mobile_number": mobile_number,
    "luhn": luhn,
    "bank_card": bank_card,
}
