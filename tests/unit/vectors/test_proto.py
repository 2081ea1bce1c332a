"""The committed gRPC code is what vectors.proto generates (no hand edits, no drift)."""

from __future__ import annotations

import pytest


def test_generated_code_matches_the_proto() -> None:
    pytest.importorskip("grpc_tools")
    from vectors.proto.build import differences

    assert differences() == []
