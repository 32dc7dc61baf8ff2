"""The reference for ``numlookup lookup --input``: the loop a user would write over phonenumbers.

Per line: parse, ``is_valid_number``, region, carrier name, one JSON line
(``json.dumps``); the pattern cache is on, as it is for numlookup. Run by
``bench/cli.py`` in a fresh interpreter::

    python bench/cli_reference_bulk.py INPUT OUTPUT
"""

from __future__ import annotations

import json
import sys

import phonenumbers
from phonenumbers import carrier

phonenumbers.enable_pattern_cache()
with open(sys.argv[1], encoding="utf-8") as source, open(sys.argv[2], "w", encoding="utf-8") as sink:
    for line in source:
        raw = line.rstrip("\n")
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException as exc:
            sink.write(json.dumps({"input": raw, "valid": False, "error": str(exc)}) + "\n")
            continue
        valid = phonenumbers.is_valid_number(number)
        sink.write(
            json.dumps(
                {
                    "input": raw,
                    "number": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                    "valid": valid,
                    "region": phonenumbers.region_code_for_number(number) if valid else None,
                    "carrier": carrier.name_for_number(number, "en") if valid else None,
                }
            )
            + "\n"
        )
