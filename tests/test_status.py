"""The status vocabulary: every style writes its words, and every word reads back as the same fact."""

from __future__ import annotations

import pytest

from numlookup.status import (
    STATUS_STYLES,
    UnknownStyle,
    answer_style,
    client_style,
    outcome,
    reachability,
    status_style,
    status_word,
)


@pytest.mark.parametrize(
    ("style", "online", "offline"),
    [("seed", "ONLINE", "OFFLINE"), ("onoff", "ON", "OFF"), ("truefalse", "true", "false")],
)
def test_status_vocabulary(style: str, online: str, offline: str) -> None:
    chosen = status_style(style)
    assert status_word(True, True, chosen) == online
    assert status_word(True, False, chosen) == offline
    assert status_word(True, None, chosen) == "UNKNOWN"
    assert status_word(False, None, chosen) == "INVALID"
    # Read back, whatever the style: an upstream's answer, the metrics' label.
    assert reachability(online) is True and reachability(offline) is False
    assert outcome(online) == "online" and outcome(offline) == "offline"


def test_words_outside_the_vocabulary() -> None:
    assert reachability("UNKNOWN") is None and reachability("INVALID") is None and reachability("maybe") is None
    assert reachability(None) is None and reachability(True) is True
    assert outcome("INVALID") == "invalid" and outcome("UNKNOWN") == "unknown" and outcome("weird") == "unknown"


def test_unknown_style_names_the_choices() -> None:
    with pytest.raises(UnknownStyle, match="loud.*seed, onoff, truefalse"):
        status_style("loud")
    assert STATUS_STYLES == ("seed", "onoff", "truefalse")


@pytest.mark.parametrize(
    ("user_agent", "style"),
    [
        # python, as every release on PyPI sends it (status.py's table)
        ("OpenAPI-Generator/2.7.0/python", "truefalse"),
        ("OpenAPI-Generator/2.6.0/python", "onoff"),
        ("OpenAPI-Generator/2.5.2/python", "onoff"),
        ("OpenAPI-Generator/2.0.0/python", "onoff"),
        ("OpenAPI-Generator/1.5.0/python", "onoff"),
        ("OpenAPI-Generator/1.2.0/python", "onoff"),
        ("OpenAPI-Generator/2.8.0/python", "truefalse"),  # later releases: the newest words known
        ("OpenAPI-Generator/3.0.0/python", "truefalse"),
        ("OpenAPI-Generator/2.10.0/python", "truefalse"),  # numerically, not as text
        ("OpenAPI-Generator/2.7.0.post1/python", "truefalse"),
        # the other languages, from their release tags
        ("OpenAPI-Generator/4.7.0/java", "truefalse"),
        ("OpenAPI-Generator/4.6.0/java", "onoff"),
        ("OpenAPI-Generator%2F4.3.0%2Fcsharp", "truefalse"),  # C# sends it URL-encoded
        ("OpenAPI-Generator%2F4.2.0%2Fcsharp", "onoff"),
        ("OpenAPI-Generator/1.2.0/csharp", "onoff"),
        ("OpenAPI-Generator/3.4.1/PHP", "onoff"),
        ("OpenAPI-Generator/2.4.1/ruby", "onoff"),
        ("  OpenAPI-Generator/2.7.0/python  ", "truefalse"),
        ("openapi-generator/2.7.0/Python", "truefalse"),
        # not an official client, or not one we know the words of: the seed's
        ("node-superagent/3.7.0", "seed"),  # the Node client sends superagent's own
        ("OpenAPI-Generator/1.0.0/go", "seed"),
        ("OpenAPI-Generator/2.7/python", "seed"),
        ("OpenAPI-Generator/x.y.z/python", "seed"),
        ("my-app/1.0 OpenAPI-Generator/2.7.0/python", "seed"),
        ("python-httpx/0.28.1", "seed"),
        ("curl/8.5.0", "seed"),
        ("", "seed"),
        (None, "seed"),
    ],
)
def test_client_style_reads_the_user_agent(user_agent: str | None, style: str) -> None:
    assert client_style(user_agent) == style


def test_answer_style_is_the_setting_unless_auto() -> None:
    client = "OpenAPI-Generator/2.7.0/python"
    assert [answer_style(s, client) for s in ("auto", "seed", "onoff", "truefalse")] == [
        "truefalse",
        "seed",
        "onoff",
        "truefalse",
    ]
    assert answer_style("auto", None) == "seed" and answer_style("auto", "OpenAPI-Generator/2.5.2/python") == "onoff"
