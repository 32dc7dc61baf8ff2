"""A reproducible corpus of inputs over every region: what the plan and phonenumbers must agree on.

Why here: the suite (a small corpus) and ``bench/numbering.py`` (a million) must
draw from one definition, and neither the server nor the CLI needs it.
"""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

from numlookup.numbering import patterns
from numlookup.numbering.layout import MAX_KEYED

_GARBAGE = (
    "",
    " ",
    "+",
    "++",
    "abc",
    "+abc",
    "hello world",
    "+44 (0) 20 7946 0958",
    "tel:+441234567890",
    "+1-800-FLOWERS",
    "0044 20 7946 0958",
    "+٣٧٢٥١٠٠٠٠٠١",
    "+３７２５１０００００１",
    "+372 5100 0001 ext. 12",
    "+" + "9" * 20,
    "1" * 40,
    "+00",
    "+0",
    "+1",
    "+12",
    "+123",
    "(+372) 5100-0001",
    "+372\n51000001",
    "+44 7700 900 123 x",
)


def sample_corpus(size: int, seed: int = 2024) -> tuple[list[str], list[str | None]]:
    """A reproducible mix of inputs over every region, for agreement tests and the benchmark.

    About 95% is ``+`` E.164 input: example numbers of
    every type of every region and their neighbours (±1, truncated, extended,
    trailing digits replaced), random digits after real calling codes, random
    digits; the rest is national formats with a region hint and garbage.
    Returns the inputs and, per input, the region hint (None for ``+`` input).
    """
    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    types = [t for t in range(11)]
    examples: list[tuple[str, str]] = []  # (region, national significant number)
    codes: dict[str, int] = {}
    for region in regions:
        codes[region] = phonenumbers.country_code_for_region(region)
        for t in types:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is not None:
                examples.append((region, phonenumbers.national_significant_number(ex)))
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        for t in types:
            ex = phonenumbers.example_number_for_non_geo_entity(cc) if t == 0 else None
            md = PhoneMetadata.metadata_for_nongeo_region(cc)
            for name in ("mobile", "toll_free", "premium_rate", "voip", "uan", "shared_cost", "personal_number"):
                desc = getattr(md, name, None)
                if desc is not None and desc.example_number:
                    examples.append((f"+{cc}", desc.example_number))
            if ex is not None:
                examples.append((f"+{cc}", phonenumbers.national_significant_number(ex)))
    calling_codes = sorted(COUNTRY_CODE_TO_REGION_CODE)

    def cc_of(region: str) -> int:
        return int(region[1:]) if region.startswith("+") else codes[region]

    def digits(n: int) -> str:
        return "".join(rng.choices("0123456789", k=n))

    out: list[str] = []
    hints: list[str | None] = []
    for ex_region, nsn in examples:  # every example as it is
        out.append(f"+{cc_of(ex_region)}{nsn}")
        hints.append(None)
    while len(out) < size:
        roll = rng.random()
        hint: str | None = None
        if roll < 0.45:  # an example with its tail replaced: mostly valid numbers across all ranges
            ex_region, nsn = rng.choice(examples)
            keep = rng.randint(max(1, len(nsn) - 7), len(nsn))
            text = f"+{cc_of(ex_region)}{nsn[:keep]}{digits(len(nsn) - keep)}"
        elif roll < 0.60:  # ±1, truncated, extended
            ex_region, nsn = rng.choice(examples)
            value = int(nsn) + rng.choice((-1, 1, -10, 10))
            variant = rng.choice(("step", "cut", "grow", "cut2", "grow2"))
            if variant == "step":
                body = str(max(value, 0)).zfill(len(nsn))
            elif variant.startswith("cut"):
                body = nsn[: -1 if variant == "cut" else -2]
            else:
                body = nsn + digits(1 if variant == "grow" else 2)
            text = f"+{cc_of(ex_region)}{body}"
        elif roll < 0.85:  # random digits after a real calling code
            cc = rng.choice(calling_codes)
            n = rng.randint(1, 15 - len(str(cc)))
            text = f"+{cc}{digits(n)}"
        elif roll < 0.95:  # random digits
            text = "+" + digits(rng.randint(3, 16))
        elif roll < 0.99:  # national format with a region hint
            ex_region, nsn = rng.choice(examples)
            if ex_region.startswith("+"):
                continue
            hint = ex_region
            number = phonenumbers.parse(f"+{cc_of(ex_region)}{nsn[:-3]}{digits(3)}")
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            if rng.random() < 0.3:
                text = "0" + digits(rng.randint(5, 11))
        else:
            text = rng.choice(_GARBAGE)
        out.append(text)
        hints.append(hint)
    return out[:size], hints[:size]


def long_numbers(seed: int) -> list[str]:
    """``+`` and 16 or 17 digits: every region's example numbers with a national prefix or digits too many, and noise.

    A national prefix typed after the calling code (``+82 0 …``) is what makes
    such a number valid once parse strips it; the rest are ``too_long``,
    ``invalid_country_code`` or invalid for their region.
    """
    rng = random.Random(seed)
    numbers: list[str] = []
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        head = f"+{cc}"
        for region in regions:
            for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
                example = phonenumbers.example_number_for_type(region, kind) if region != "001" else None
                if example is None:
                    continue
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                for prefix in ("0", "00", "1", "8", "9", "90", "015", "021", "06", "7"):
                    for extra in range(5):
                        text = head + prefix + e164[len(head) :] + "".join(rng.choices("0123456789", k=extra))
                        if 16 <= len(text) - 1 <= 17:
                            numbers.append(text)
        for _ in range(20):
            size = rng.choice((16, 17)) - len(str(cc))
            numbers.append(head + "".join(rng.choices("0123456789", k=size)))
    numbers += ["+" + "".join(rng.choices("0123456789", k=rng.choice((16, 17)))) for _ in range(2000)]
    return list(dict.fromkeys(numbers))


def rewritten_numbers(seed: int) -> list[str]:
    """Numbers of the calling codes whose national prefix a transform rule rewrites, along every path of the rule.

    Each path through the prefix pattern (``patterns.match_sequences``) is drawn
    a few times, followed by random digits to every length the tables key, and
    so is each region's example numbers with its national prefix put back.
    """
    rng = random.Random(seed)
    numbers: list[str] = []
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        md = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        if md is None or not md.national_prefix_transform_rule or not md.national_prefix_for_parsing:
            continue
        head = f"+{cc}"
        room = MAX_KEYED - len(str(cc))
        for seq, _anchored in patterns.match_sequences(md.national_prefix_for_parsing, room):
            for _ in range(3):
                path = "".join(rng.choice([str(d) for d in range(10) if mask >> d & 1]) for mask in seq)
                for n in range(max(len(path), 2), room + 1):
                    numbers.append(head + path + "".join(rng.choices("0123456789", k=n - len(path))))
        for region in regions:
            for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
                example = phonenumbers.example_number_for_type(region, kind)
                if example is not None:
                    national = str(example.national_number)
                    prefix = md.national_prefix or "0"
                    numbers += [head + national, head + prefix + national, head + national[1:]]
    return list(dict.fromkeys(numbers))
