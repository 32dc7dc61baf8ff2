"""The request and response bodies of ``POST /v1/hlr/sync`` as msgspec Structs.

The handler decodes and encodes with these, and ``/openapi.json`` is generated
from them, so the documented schema cannot drift from what is served. The
result objects inside a response are ``results.NumberResult``, which the CLI and
bulk files print too.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from numlookup.results import NumberResult


class NumbersToInvestigate(msgspec.Struct):
    """Unknown keys are ignored, as the contract asks.

    ``max_age`` and ``deadline`` are our extensions (Messente's API has neither
    and its clients never send them): the oldest cached live answer the client
    accepts, and how long it will wait for live answers, both in seconds.
    """

    numbers: list[str]
    max_age: Annotated[float, msgspec.Meta(ge=0)] | None = None
    deadline: Annotated[float, msgspec.Meta(ge=0)] | None = None


class LookupSuccess(msgspec.Struct):
    request_id: str
    result: list[NumberResult]
