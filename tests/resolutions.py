"""The networks of a resolution that a test expects to be there: None fails the test at once, with the input."""

from __future__ import annotations

from numlookup.numbering.models import Country, Network, Resolution


def original(resolution: Resolution) -> Network:
    assert resolution.original_network is not None, f"{resolution.input}: no original network"
    return resolution.original_network


def ported(resolution: Resolution) -> Network:
    assert resolution.ported_network is not None, f"{resolution.input}: not ported"
    return resolution.ported_network


def current(resolution: Resolution) -> Network:
    assert resolution.current_network is not None, f"{resolution.input}: no current network"
    return resolution.current_network


def country(resolution: Resolution) -> Country:
    assert resolution.country is not None, f"{resolution.input}: no country"
    return resolution.country
