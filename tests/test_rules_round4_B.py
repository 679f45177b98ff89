"""Round-4 code-level checks: the mobile-number validator behind the read-out / letter-o phone regex."""

from __future__ import annotations

import pytest

from rules.validators import VALIDATORS, mobile_number


@pytest.mark.parametrize("text", ["一三八,一二三四,五六七八", "15o12345678", "幺五九、零零一二、三四五六", "13912345678"])
def test_mobile_number_reads_any_spelling(text):
    assert mobile_number(text)


@pytest.mark.parametrize("text", [
    "12812345678",        # second digit 2: no mainland mobile prefix
    "1381234567",         # 10 digits
    "13oooo12ooo",        # more than three o's: a word, not a number
    "一三八,一二三四,五六七",  # a group short
])
def test_mobile_number_refuses_what_is_no_number(text):
    assert not mobile_number(text)


def test_mobile_number_is_a_named_validator():
    assert VALIDATORS["mobile_number"] is mobile_number
