"""Compare-and-swap is refused, clearly, on a server that silently ignores conditional writes.

Some S3-compatible servers drop ``If-None-Match`` / ``If-Match`` and overwrite anyway. We build
one for real: a loopback HTTP proxy that strips those headers in front of a second moto server
(without auth, so the stripped headers do not break request signatures).
"""

from __future__ import annotations

import pytest

from mlops_onprem.errors import PointerConflictError, StoreCapabilityError
from tests.fixtures.servers import store_at


def test_cas_is_refused_when_the_server_ignores_conditional_headers(header_stripping_proxy, tmp_path):
    store = store_at(header_stripping_proxy, "ignores-conditions", tmp_path)
    store.put_bytes("plain/object", b"ordinary writes still work")
    with pytest.raises(StoreCapabilityError, match="create-if-absent, existing key: expected 412"):
        store.write_pointer("models/demo/aliases/champion.json", {"version": 1}, expected_token=None)
    assert not store.exists("models/demo/aliases/champion.json")
    assert list(store.list("control/cas-probe/")) == []  # the probe cleans up after itself


def test_the_same_server_without_the_proxy_supports_cas(plain_moto, tmp_path):
    store = store_at(plain_moto, "honours-conditions", tmp_path)
    first = store.write_pointer("ptr.json", {"v": 1}, expected_token=None)
    with pytest.raises(PointerConflictError):
        store.write_pointer("ptr.json", {"v": 2}, expected_token=None)
    store.write_pointer("ptr.json", {"v": 2}, expected_token=first.token)
    assert store.read_pointer("ptr.json").value == {"v": 2}
