"""``api.lookup.check_content_type``: JSON in any spelling the media type allows passes; anything else is a 102."""

from __future__ import annotations

import pytest

from numlookup.api.errors import ApiError
from numlookup.api.lookup import check_content_type


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON", " application/json ", "application/json; charset=utf-8"],
)
def test_json_passes(content_type: str) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/jsonx", "application/json-seq", "json"])
def test_anything_else_is_refused_and_named(content_type: str) -> None:
    with pytest.raises(ApiError) as refused:
        check_content_type(content_type)
    assert (refused.value.http_status, refused.value.code) == (400, 102)
    assert f"(got {content_type or 'none'})" in refused.value.description
