"""json_body, the one reader of a worker's JSON body: a nesting bomb is a 400 in the envelope, not a 500."""

from __future__ import annotations

import pytest
from flask import Flask

from services.common.envelope import ApiError, ErrorCode, json_body


@pytest.mark.parametrize("depth", [100_000])
def test_a_body_nested_past_the_recursion_limit_is_invalid_request(depth: int) -> None:
    app = Flask(__name__)
    body = '{"a":' + "[" * depth + "]" * depth + "}"
    context = app.test_request_context("/", method="POST", data=body, content_type="application/json")
    with context, pytest.raises(ApiError) as caught:
        json_body()
    assert caught.value.code is ErrorCode.INVALID_REQUEST and caught.value.status == 400
    assert "nests too deeply" in caught.value.details


def test_an_ordinary_body_still_reads() -> None:
    app = Flask(__name__)
    with app.test_request_context("/", method="POST", data='{"a": [[1]]}', content_type="application/json"):
        assert json_body() == {"a": [[1]]}
