"""Issue 13's examples over the real API: what a new user gets back for numbers of each new source.

A real server on a real socket, a real account, ``POST /v1/hlr/sync`` as a client sends it:
the shipped registry, the India series, the ARCEP blocks and the decided rows reach the
wire as ``originalNetwork`` (offline: ``currentNetwork`` is the same, nothing ported).
``tests/numbering/test_shipped_data.py`` ties each expected answer to its source row.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Live

SYNC = "/v1/hlr/sync"
SYNC_LIMIT = 10  # numbers per sync call (wire contract)
JSON = {"Content-Type": "application/json", "Accept": "application/json"}

# number -> (mccmnc, networkName, countryCode, countryPrefix)
EXPECTED: dict[str, tuple[str | None, str, str, str]] = {
    # India: in-mob-prefix series 7003 (Jio, Kolkata: a metro's own MNC) and 9820 (Vi, Mumbai)
    "+917003012345": ("405873", "Jio", "IND", "91"),
    "+919820012345": ("40420", "Vi India", "IND", "91"),
    # 9201: in-mob-prefix says Jio, libphonenumber Tata Docomo: the series is not used
    "+919201012345": (None, "Tata Docomo", "IND", "91"),
    # Sweden: Telenor Sverige, left for review before, decided 240 06 (240 08 is not operational)
    "+46708012345": ("24006", "Telenor Sverige", "SWE", "46"),
    # France: an ARCEP block of each of the four network operators
    "+33607123456": ("20801", "Orange France", "FRA", "33"),
    "+33609123456": ("20810", "SFR", "FRA", "33"),
    "+33601781234": ("20820", "Bouygues Telecom", "FRA", "33"),
    "+33651123456": ("20815", "Free Mobile", "FRA", "33"),
    # an ARCEP block held by La Poste Telecom (no MNC) inside a prefix libphonenumber names SFR
    "+33601630123": (None, "LPTL", "FRA", "33"),
    # overseas: Orange in Mayotte (647 00), Outremer Telecom in Martinique (340 02)
    "+262639012345": ("64700", "Orange", "MYT", "262"),
    "+596696001234": ("34002", "SFR Caraïbe", "MTQ", "596"),
    # the 2024 registries: UZ 434-10 HUMANS, ET 636-02 Safaricom, MW 650-02 Zero2 (reviewed)
    "+998331234567": ("43410", "HUMANS", "UZB", "998"),
    "+251700123456": ("63602", "Safaricom Ethiopia", "ETH", "251"),
    "+265212345678": ("65002", "Zero2", "MWI", "265"),
}


@pytest.fixture(scope="module")
def answers(live: Live) -> dict[str, dict[str, Any]]:
    numbers, found = list(EXPECTED), dict[str, dict[str, Any]]()
    with live.client(live.account("10")) as client:
        for start in range(0, len(numbers), SYNC_LIMIT):
            response = client.post(SYNC, json={"numbers": numbers[start : start + SYNC_LIMIT]}, headers=JSON)
            assert response.status_code == 200, response.text
            found.update({item["number"]: item for item in response.json()["result"]})
    assert set(found) == set(EXPECTED)
    return found


@pytest.mark.parametrize("number", list(EXPECTED))
def test_shipped_networks_on_the_wire(answers: dict[str, dict[str, Any]], number: str) -> None:
    mccmnc, name, alpha3, prefix = EXPECTED[number]
    item = answers[number]
    network = item["originalNetwork"]
    assert network["mccmnc"] == mccmnc
    assert network["networkName"] == name
    assert (network["countryCode"], network["countryPrefix"]) == (alpha3, prefix)
    assert item["currentNetwork"] == network and item["portedNetwork"] is None
    assert item["source"] == "offline"
