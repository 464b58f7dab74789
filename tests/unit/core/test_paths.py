"""The (dag, run, task) -> folder mapping: lossless, collision-free, never a dot or empty segment."""

from __future__ import annotations

import itertools
import random
import re
from urllib.parse import quote, unquote

import pytest

from mlops_provider.core.paths import decode_segment, encode_segment, run_prefix

HOSTILE = [
    "_private",
    "private",
    "a:b",
    "a+b",
    "a_b",
    "a b",
    "a%3Ab",
    "a%3ab",
    "a%b",
    "%",
    "%%",
    "%2e",
    "%2E",
    "%2e%2e",
    "%252e",
    ".",
    "..",
    "...",
    ".hidden",
    "a/b",
    "a\\b",
    "../secret_dag",
    "a\x00b",
    "\t",
    " ",
    "manual__2025-01-02T03:04:05+00:00",
    "scheduled__2025-01-02T03:04:05.123456+00:00",
    "group.task",
    "café",
    "cafe\u0301",  # the same word, decomposed: a different id, a different folder
    "．．",  # fullwidth dots
    "\u2024\u2024",  # one-dot leaders
    "𝔡𝔞𝔤",
    "日本語",
    "\u202e" + "lmth.x",  # right-to-left override
    "A",
    "a",
    "-",
    "_",
    "x" * 250,
    "é" * 200,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_round_trip_and_safe_alphabet(value: str) -> None:
    segment = encode_segment(value)
    assert decode_segment(segment) == value
    assert re.fullmatch(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+", segment)
    assert segment not in ("", ".", "..")
    assert "." not in segment
    assert "/" not in segment
    assert "\\" not in segment
    # a link URL-encodes the folder name again; one decode gives the folder name back
    assert unquote(quote(segment, safe="")) == segment


def test_no_two_ids_share_a_folder() -> None:
    folders = {encode_segment(v): v for v in HOSTILE}
    assert len(folders) == len(set(HOSTILE))
    assert encode_segment("_private") != encode_segment("private")
    assert encode_segment("a:b") != encode_segment("a+b")


def test_random_ids_round_trip_without_collisions() -> None:
    rng = random.Random(20260101)
    alphabet = "aZ09_-.:+/%\\ \x00é日𝔡．\u0301~"
    values = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(5000)}
    encoded = {}
    for value in values:
        segment = encode_segment(value)
        assert decode_segment(segment) == value
        assert encoded.setdefault(segment, value) == value


@pytest.mark.parametrize(
    "segment",
    [
        "",
        ".",
        "..",
        "a.b",  # a raw dot is never produced
        "%2e",  # lower-case hex is not canonical
        "%2E%2e",
        "%5F",  # "_" encoded: "_private" has exactly one folder name
        "allowed%5Fdag",
        "%41",  # "A" encoded
        "%",
        "%2",
        "%GG",
        "%C0%AE",  # overlong "."
        "%C3",  # truncated UTF-8
        "%ED%A0%80",  # a UTF-16 surrogate
        "a b",
        "a/b",
        "a\\b",
        "a\x00b",
        "．．",
        "é",
    ],
)
def test_decode_refuses_what_encode_never_produces(segment: str) -> None:
    assert decode_segment(segment) is None


def test_encode_refuses_empty() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        encode_segment("")


def test_run_prefix_joins_encoded_segments() -> None:
    assert run_prefix("/r/", "my.dag", "manual__2025-01-02T03:04:05+00:00", "g.t") == (
        "/r/my%2Edag/manual__2025-01-02T03%3A04%3A05%2B00%3A00/g%2Et"
    )
    assert run_prefix("s3://b/reports", "d", "..", ".") == "s3://b/reports/d/%2E%2E/%2E"
    prefixes = {run_prefix("/r", *ids) for ids in itertools.product(["a", "a/b", "a%2Fb"], repeat=3)}
    assert len(prefixes) == 27
