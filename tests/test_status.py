"""The status vocabulary: every style writes its words, and every word reads back as the same fact."""

from __future__ import annotations

import pytest

from numlookup.status import STATUS_STYLES, UnknownStyle, outcome, reachability, status_style, status_word


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
