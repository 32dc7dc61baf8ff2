"""The reference for ``numlookup lookup NUMBER``: parse that one number with phonenumbers, print its carrier.

Run by ``bench/cli.py`` in a fresh interpreter, as a user would run it::

    python bench/cli_reference_one.py +37251234567
"""

from __future__ import annotations

import sys

import phonenumbers
from phonenumbers import carrier

number = phonenumbers.parse(sys.argv[1], None)
print(carrier.name_for_number(number, "en"))
