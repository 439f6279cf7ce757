"""The canonical encoding a MAC covers: the fast path writes the same bytes as the encoder.

hashchain.canonical writes the usual records straight into a template; every entry ever
appended must keep its MAC, so for any record the bytes must equal the compact, key-sorted JSON
of its FIELDS. Hypothesis draws the records, including the odd ones (quotes, control and
non-ASCII characters, None, nested detail, values of other types that fall back to the encoder).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dashvault.lib import hashchain

TEXT = st.text(max_size=40)
SCALAR = st.none() | st.booleans() | st.integers() | TEXT
DETAIL = st.dictionaries(TEXT, SCALAR | st.lists(SCALAR, max_size=3), max_size=4)


def encoder_bytes(record: dict[str, Any]) -> bytes:
    """The definition: FIELDS as compact JSON with sorted keys, non-ASCII kept."""
    return json.dumps(
        {name: record[name] for name in hashchain.FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()


RECORD = st.fixed_dictionaries(
    {
        "chain": TEXT,
        "seq": st.integers(min_value=0, max_value=2**63 - 1),
        "prev": TEXT,
        "at": TEXT,
        "action": TEXT,
        "actor_kind": TEXT,
        "actor_id": st.none() | TEXT,
        "target_type": TEXT,
        "target_id": TEXT,
        "ip": st.none() | TEXT,
        "detail": DETAIL,
    },
    optional={"id": st.integers(), "mac": TEXT},
)


@given(RECORD)
def test_the_fast_path_writes_the_encoders_bytes(record: dict[str, Any]) -> None:
    assert hashchain.canonical(record) == encoder_bytes(record)


@given(
    RECORD,
    st.sampled_from(["seq", "actor_id", "ip", "target_id", "detail"]),
    st.sampled_from([uuid.UUID(int=7), True, 3, None, ["a"], {"a": 1}]),
)
def test_a_field_of_another_type_goes_through_the_encoder(
    record: dict[str, Any], name: str, value: object
) -> None:
    record[name] = value
    assert hashchain.canonical(record) == encoder_bytes(record)


def test_the_mac_is_hmac_sha256_of_those_bytes() -> None:
    import hashlib
    import hmac

    record = {
        "chain": "platform",
        "seq": 1,
        "prev": hashchain.GENESIS,
        "at": "2026-11-27T14:00:00.000000+00:00",
        "action": "signin",
        "actor_kind": "user",
        "actor_id": None,
        "target_type": "",
        "target_id": "",
        "ip": "192.0.2.1",
        "detail": {"role": "viewer", "n": 2},
    }
    key = b"k" * 32
    expected = hmac.new(key, encoder_bytes(record), hashlib.sha256).hexdigest()
    assert hashchain.mac(key, record) == expected
    assert hashchain.mac(key, record, exact=True) == expected
    assert hashchain.mac(b"other key", record) != expected
