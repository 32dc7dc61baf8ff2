"""One official Python client's ``fetch_info``, and what its own model parsed, as plain values.

Imported by the tests for the client installed beside them (2.7.0), and run as
a script (``python -S client_python.py HOST USER PASSWORD NUMBER...``, printing
JSON) for older releases, each from its own folder: so it uses nothing but the
standard library and the client, whose API is the same from 1.2.0 to 2.7.0.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _mccmnc(network: Any) -> str | None:
    return None if network is None else str(network.mccmnc)


def fetch_info(host: str, username: str, password: str, numbers: list[str]) -> dict[str, Any]:
    import messente_api
    from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate

    client = ApiClient(Configuration(host=host, username=username, password=password))
    response = NumberLookupApi(client).fetch_info(NumbersToInvestigate(numbers=numbers))
    return {
        "version": messente_api.__version__,
        "result": [
            {
                "number": r.number,
                "status": r.status,
                "ported": r.ported,
                "roaming": r.roaming,
                "currentNetwork": _mccmnc(r.current_network),
                "originalNetwork": _mccmnc(r.original_network),
                "portedNetwork": _mccmnc(r.ported_network),
                "roamingNetwork": _mccmnc(r.roaming_network),
            }
            for r in response.result
        ],
    }


if __name__ == "__main__":
    host, username, password, *numbers = sys.argv[1:]
    print(json.dumps(fetch_info(host, username, password, numbers)))
