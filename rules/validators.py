"""Checks that regexes cannot express (presidio's ``invalidate_result``).

A rule's regex may name a validator; a regex hit whose digits fail it is not a finding
(a random 18-digit order number is not an ID card, a 16-digit one is not a bank card).
"""

from __future__ import annotations

from collections.abc import Callable

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit() or ch in "xX").upper()


def cn_id_checksum(text: str) -> bool:
    """GB 11643-1999 check character of an 18-character resident ID number."""
    number = _digits(text)
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17]


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
    "luhn": luhn,
    "bank_card": bank_card,
}
