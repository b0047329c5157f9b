"""The canonical JSON every hash and cache key is made from keeps its bytes."""

import json
import random

import pytest

from prompt_release.canonical import canonical_json


def _reference(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [0.2, "x", None, True]},
        {"temperature": 1e-05, "top_p": 1e-7, "penalty": 0.0001, "big": 1e16, "tiny": 2.5e-300},
        {1: "int key", 2: "x"},
        {"é": "\u2028\x00\x1f"},
        2**70,
        [{"role": "user", "content": "one-time e-mail: 1e-5 0.00001"}],
    ],
)
def test_same_bytes_as_the_definition(value):
    assert canonical_json(value) == _reference(value)


def test_random_floats_keep_pythons_spelling():
    rng = random.Random(7)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 20) for _ in range(20_000)]
    assert [canonical_json(v) for v in values] == [_reference(v) for v in values]
