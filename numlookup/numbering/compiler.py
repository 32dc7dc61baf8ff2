"""Compile libphonenumber's metadata into the numbering plan's sorted interval arrays.

Every regex libphonenumber runs on a number (parse, national-prefix stripping,
the general pattern, each number type, each region sharing the calling code) is
finite over digit strings of a given length, so :mod:`patterns` turns them into
intervals, and this module paints the intervals into a few sorted arrays keyed
as :mod:`layout` says. Each rule mirrors a named function of ``phonenumbers``
(``parse``, ``_maybe_strip_national_prefix_carrier_code``,
``is_possible_number_with_reason``, ``region_code_for_number``,
``_number_type_helper``, ``carrier.name_for_number``). What the expander cannot
turn into intervals is marked ``SLOW``: the plan sends those numbers through
phonenumbers itself. Compiling takes seconds; :class:`plan.NumberingPlan` caches
the result.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberType, ValidationResult
from phonenumbers.phonenumberutil import _test_number_length, region_code_for_country_code

from numlookup.numbering import patterns
from numlookup.numbering.countries import NON_GEOGRAPHIC
from numlookup.numbering.interning import Interner
from numlookup.numbering.intervals import paint
from numlookup.numbering.layout import (
    KEY_BASE,
    MAX_DIGITS,
    MAX_KEYED,
    MAX_NSN,
    NO_REGION,
    REASON_CODE,
    SLOW,
    UNKNOWN,
    Array,
)
from numlookup.numbering.models import InvalidReason

# _number_type_helper's order; fixed line and mobile are handled after these.
_TYPE_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


def _metadata(cc: int, region: str) -> PhoneMetadata:
    md = (
        PhoneMetadata.metadata_for_nongeo_region(cc)
        if region == NON_GEOGRAPHIC
        else PhoneMetadata.metadata_for_region(region)
    )
    assert md is not None, (cc, region)  # every region of COUNTRY_CODE_TO_REGION_CODE has metadata
    return md


def _main_metadata(cc: int) -> PhoneMetadata:
    """The metadata parse and is_possible_number use: the calling code's main region."""
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region_code_for_country_code(cc))
    assert md is not None, cc
    return md


def _paint(
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    values: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    default: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Flatten possibly nested intervals into disjoint segments; a higher rank overwrites a lower one."""
    if len(lo) == 0:
        return np.zeros(1, dtype=np.int64), np.full(1, default, dtype=np.int64)
    return paint(lo, hi, values.astype(np.int64), np.argsort(rank, kind="stable"), default)


def _key_intervals(cc: int, per_len: dict[int, list[tuple[int, int]]]) -> tuple[list[int], list[int]]:
    """National-number intervals of each length as key intervals (``L * KEY_BASE + int(cc + nsn)``)."""
    cclen = len(str(cc))
    los: list[int] = []
    his: list[int] = []
    for n, intervals in per_len.items():
        base = (cclen + n) * KEY_BASE + cc * 10**n
        for a, b in intervals:
            los.append(base + a)
            his.append(base + b)
    return los, his


def _lengths(desc: phonenumbers.PhoneNumberDesc | None, max_n: int) -> tuple[int, ...]:
    """The lengths a desc can match under _is_number_matching_desc (no list: any length)."""
    if desc is None or not desc.national_number_pattern:
        return ()
    if len(desc.possible_length) == 0:
        return tuple(range(1, max_n + 1))
    return tuple(sorted({n for n in desc.possible_length if 1 <= n <= max_n}))


class _Coverage:
    """Membership of elementary segments in interval sets, for one calling code."""

    def __init__(self, cc: int, max_n: int, sets: list[dict[int, list[tuple[int, int]]]]) -> None:
        cclen = len(str(cc))
        all_lo, all_hi = [], []
        self.sets: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for per_len in sets:
            lo, hi = _key_intervals(cc, per_len)
            self.sets.append((np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)))
            all_lo.extend(lo)
            all_hi.extend(hi)
        for n in range(1, max_n + 1):  # the whole calling code, so its gaps become segments too
            base = (cclen + n) * KEY_BASE + cc * 10**n
            all_lo.append(base)
            all_hi.append(base + 10**n - 1)
        self.bounds = np.unique(
            np.concatenate([np.array(all_lo, dtype=np.int64), np.array(all_hi, dtype=np.int64) + 1])
        )

    def covered(self, i: int) -> npt.NDArray[np.bool_]:
        lo, hi = self.sets[i]
        diff = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        np.add.at(diff, np.searchsorted(self.bounds, lo), 1)
        np.add.at(diff, np.searchsorted(self.bounds, hi + 1), -1)
        return np.cumsum(diff[:-1]) > 0


def _region_types(
    cc: int, regions: Sequence[str], max_n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Segments of one calling code: (starts, region position in ``regions`` or -1, type).

    Mirrors ``region_code_for_number`` (first region whose leading digits match,
    else whose type is not UNKNOWN) and ``_number_type_helper`` for that region.
    Raises TooComplex when a pattern is beyond the expander.
    """
    sets: list[dict[int, list[tuple[int, int]]]] = []
    plan = []  # per region: (general, [(set, code)], fixed, mobile, same, leading)
    all_lengths = tuple(range(1, max_n + 1))
    for region in regions:
        md = _metadata(cc, region)

        def add(desc: phonenumbers.PhoneNumberDesc | None) -> int | None:
            lengths = _lengths(desc, max_n)
            if not lengths:
                return None
            assert desc is not None
            sets.append(patterns.full_match_intervals(desc.national_number_pattern, lengths))
            return len(sets) - 1

        general = add(md.general_desc)
        typed = [(add(getattr(md, name)), int(code)) for name, code in _TYPE_ORDER]
        fixed = add(md.fixed_line)
        mobile = add(md.mobile)
        leading = None
        if md.leading_digits is not None:
            sets.append(patterns.prefix_intervals(md.leading_digits, all_lengths))
            leading = len(sets) - 1
        plan.append(
            (
                md.leading_digits is not None,
                general,
                typed,
                fixed,
                mobile,
                bool(md.same_mobile_and_fixed_line_pattern),
                leading,
            )
        )

    cov = _Coverage(cc, max_n, sets)
    nseg = len(cov.bounds)
    cache: dict[int, npt.NDArray[np.bool_]] = {}

    def covered(i: int | None) -> npt.NDArray[np.bool_]:
        if i is None:
            return np.zeros(nseg, dtype=bool)
        if i not in cache:
            cache[i] = cov.covered(i)
        return cache[i]

    assigned = np.full(nseg, NO_REGION, dtype=np.int64)
    out_type = np.full(nseg, UNKNOWN, dtype=np.int64)
    for position, (has_leading, general, typed, fixed, mobile, same, leading) in enumerate(plan):
        kind = np.full(nseg, UNKNOWN, dtype=np.int64)
        open_ = covered(general).copy()
        for index, code in typed:
            hit = open_ & covered(index)
            kind[hit] = code
            open_ &= ~hit
        fixed_hit = open_ & covered(fixed)
        if same:
            kind[fixed_hit] = PhoneNumberType.FIXED_LINE_OR_MOBILE
        else:
            mob = covered(mobile)
            kind[fixed_hit & mob] = PhoneNumberType.FIXED_LINE_OR_MOBILE
            kind[fixed_hit & ~mob] = PhoneNumberType.FIXED_LINE
            kind[open_ & ~fixed_hit & mob] = PhoneNumberType.MOBILE
        claim = covered(leading) if has_leading else kind != UNKNOWN
        take = (assigned == NO_REGION) & claim
        assigned[take] = position
        out_type[take] = kind[take]
    invalid = out_type == UNKNOWN
    assigned[invalid] = NO_REGION
    return cov.bounds, assigned, out_type


class Rewrite(NamedTuple):
    """What parse makes of a national number a prefix pattern matched: ``put + nsn[keep_from:keep_to] + nsn[drop:]``.

    Why one shape: a plain national prefix is stripped (``drop`` digits, nothing
    put or kept), and every transform rule in libphonenumber's metadata is a
    literal and one group of the match (``"9\\1"``, ``"0549\\1"``, ``"\\2"``): so a
    rewrite is a few small integers the plan applies to a whole batch in numpy.
    """

    drop: int
    keep_from: int = 0
    keep_to: int = 0
    put: str = ""


_RULE = re.compile(r"(\d*)\\(\d)")  # a transform rule of a literal and one group: "20\1"
_SAMPLES = 6


def rewrite_of(pattern: str, rule: str | None, seq: patterns.Seq, lengths: Sequence[int]) -> Rewrite:
    """The rewrite of numbers the prefix ``pattern`` matches along ``seq`` (one path), as parse makes it.

    Read off ``re.match`` itself on sample numbers of the path (of each length in
    ``lengths``): where the match ends, which group it filled
    (``_maybe_strip_national_prefix_carrier_code`` strips plainly when the last
    group is empty, else applies ``rule``). A sample that ``re`` reads along
    another path (one tried first) says nothing of this one; samples that
    disagree, a path no sample follows, or a rule of another shape raise
    :class:`patterns.TooComplex`, and those numbers stay with phonenumbers.
    """
    shape = _RULE.fullmatch(rule) if rule is not None else None
    if rule is not None and shape is None:
        raise patterns.TooComplex(f"transform rule {rule!r}")
    compiled = re.compile(pattern)
    rng = random.Random(len(seq) * 7919 + sum(seq))
    found: set[Rewrite] = set()
    for n in lengths:
        for k in range(_SAMPLES):
            digits = [[d for d in range(10) if mask >> d & 1] for mask in seq]
            head = "".join(str(ds[0] if k == 0 else ds[-1] if k == 1 else rng.choice(ds)) for ds in digits)
            number = head + "".join(rng.choices("0123456789", k=n - len(seq)))
            match = compiled.match(number)
            if match is None or match.end() != len(seq):
                continue
            groups = match.groups()
            if rule is None or shape is None or not groups or groups[-1] is None:
                found.add(Rewrite(len(seq)))
                continue
            group = int(shape.group(2))
            start, end = match.span(group) if match.group(group) is not None else (0, 0)
            made = Rewrite(len(seq), start, end, shape.group(1))
            if match.expand(rule) + number[len(seq) :] != made.put + number[start:end] + number[len(seq) :]:
                raise patterns.TooComplex(f"rule {rule!r} on {number}")
            found.add(made)
    if len(found) != 1:
        raise patterns.TooComplex(f"{len(found)} rewrites for one path of {pattern!r}")
    return found.pop()


def _rewrite_value(
    rewrites: Interner[Rewrite], pattern: str, rule: str | None, seq: patterns.Seq, lengths: Sequence[int]
) -> int:
    """The strip table's value for numbers matched along ``seq``: 0 (unchanged), a rewrite's index, or SLOW."""
    if not seq:
        return 0
    try:
        return rewrites(rewrite_of(pattern, rule, seq, lengths))
    except patterns.TooComplex:
        return SLOW


def compile_plan() -> tuple[dict[str, Array], list[str], list[str], list[int]]:
    """Build every table from the installed phonenumbers' metadata and carrier data."""
    codes = sorted(COUNTRY_CODE_TO_REGION_CODE)
    regions: list[str] = []
    for cc in codes:
        for r in COUNTRY_CODE_TO_REGION_CODE[cc]:
            if r not in regions:
                regions.append(r)
    region_pos = {r: i for i, r in enumerate(regions)}

    cc_codes = np.array(codes, dtype=np.int64)
    cc_len = np.array([len(str(c)) for c in codes], dtype=np.int64)
    cc_at = {c: i for i, c in enumerate(codes)}
    cc3 = np.full(1000, -1, dtype=np.int64)
    for p in range(100, 1000):
        s = str(p)
        for width in (1, 2, 3):  # _extract_country_code: shortest known prefix wins
            if int(s[:width]) in cc_at:
                cc3[p] = cc_at[int(s[:width])]
                break

    possible_code = {
        ValidationResult.TOO_SHORT: REASON_CODE[InvalidReason.TOO_SHORT],
        ValidationResult.TOO_LONG: REASON_CODE[InvalidReason.TOO_LONG],
        ValidationResult.INVALID_LENGTH: REASON_CODE[InvalidReason.INVALID_LENGTH],
    }
    not_kept = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH)
    reason_by_len = np.zeros((len(codes), MAX_NSN + 1), dtype=np.int64)
    keep_by_len = np.zeros((len(codes), MAX_NSN + 1), dtype=np.int64)
    for i, cc in enumerate(codes):
        md = _main_metadata(cc)
        for n in range(MAX_NSN + 1):
            result = _test_number_length("5" * n, md)
            reason_by_len[i, n] = possible_code.get(result, 0)
            keep_by_len[i, n] = int(n > 0 and result not in not_kept)

    main_lo: list[npt.NDArray[np.int64]] = []
    main_region: list[npt.NDArray[np.int64]] = []
    main_type: list[npt.NDArray[np.int64]] = []
    gd_lo: list[int] = []
    gd_hi: list[int] = []
    st_lo: list[int] = []
    st_hi: list[int] = []
    st_val: list[int] = []
    st_rank: list[int] = []
    slow_codes: list[int] = []
    rewrites = Interner([Rewrite(0)])  # 0: the number as it is
    for cc in codes:
        cclen = len(str(cc))
        max_n = MAX_KEYED - cclen
        whole_lo = [(cclen + n) * KEY_BASE + cc * 10**n for n in range(1, max_n + 1)]
        whole_hi = [lo + 10**n - 1 for lo, n in zip(whole_lo, range(1, max_n + 1), strict=True)]
        members = COUNTRY_CODE_TO_REGION_CODE[cc]
        try:
            starts, assigned, kind = _region_types(cc, members, max_n)
            main_lo.append(starts)
            main_region.append(
                np.where(
                    assigned >= 0, [region_pos[members[a]] if a >= 0 else -1 for a in assigned.tolist()], NO_REGION
                )
            )
            main_type.append(kind)
        except patterns.TooComplex:
            slow_codes.append(cc)
            main_lo.append(np.array(whole_lo, dtype=np.int64))
            main_region.append(np.full(len(whole_lo), SLOW, dtype=np.int64))
            main_type.append(np.full(len(whole_lo), UNKNOWN, dtype=np.int64))
            main_lo.append(np.array(whole_hi, dtype=np.int64) + 1)
            main_region.append(np.full(len(whole_lo), NO_REGION, dtype=np.int64))
            main_type.append(np.full(len(whole_lo), UNKNOWN, dtype=np.int64))

        md = _main_metadata(cc)
        npfp = md.national_prefix_for_parsing
        if not npfp:
            continue
        rule = md.national_prefix_transform_rule or None
        options: list[tuple[str, bool]] | None = None
        try:
            assert md.general_desc is not None
            gd = patterns.full_match_intervals(md.general_desc.national_number_pattern, tuple(range(1, max_n + 1)))
            if rule is None:
                options = patterns.literal_strings(npfp, max_n)
        except patterns.TooComplex:
            gd = None
        if gd is not None:
            # The GD table decides "the general pattern matched before and not after" for the rewrite.
            lo, hi = _key_intervals(cc, gd)
            gd_lo.extend(lo)
            gd_hi.extend(hi)
        if gd is not None and options is not None:
            # Exact: the first option (in re's order) that starts the number is stripped,
            # unless the general pattern matched before and not after.
            total = len(options)
            for n in range(1, max_n + 1):
                base = (cclen + n) * KEY_BASE + cc * 10**n
                for priority, (text, anchored) in enumerate(options):
                    if len(text) > n or (anchored and len(text) != n):
                        continue
                    free = 10 ** (n - len(text))
                    start = base + (int(text) if text else 0) * free
                    st_lo.append(start)
                    st_hi.append(start + free - 1)
                    st_val.append(rewrites(Rewrite(len(text))))
                    st_rank.append(total - priority)  # re.match takes the first option that fits
            continue
        # Transform rules (or a prefix language too large to list): each path through the prefix
        # pattern is one rewrite (rewrite_of); a path it cannot pin down goes to phonenumbers, and
        # an empty match changes nothing.
        try:
            if gd is None:
                raise patterns.TooComplex("general pattern")
            sequences = patterns.match_sequences(npfp, max_n)
            total = len(sequences)
            limit = [0]
            for priority, (seq, anchored) in enumerate(sequences):
                lengths = [n for n in range(len(seq), max_n + 1) if not anchored or n == len(seq)]
                value = _rewrite_value(rewrites, npfp, rule, seq, lengths)
                for n in lengths:
                    base = (cclen + n) * KEY_BASE + cc * 10**n
                    for a, b in patterns.sequence_intervals(seq, n - len(seq), limit):
                        st_lo.append(base + a)
                        st_hi.append(base + b)
                        st_val.append(value)
                        st_rank.append(total - priority)
        except patterns.TooComplex:
            st_lo.extend(whole_lo)
            st_hi.extend(whole_hi)
            st_val.extend([SLOW] * len(whole_lo))
            st_rank.extend([0] * len(whole_lo))

    main_starts = np.concatenate([np.zeros(1, dtype=np.int64), *main_lo])
    main_r = np.concatenate([np.full(1, NO_REGION, dtype=np.int64), *main_region])
    main_t = np.concatenate([np.full(1, UNKNOWN, dtype=np.int64), *main_type])
    order = np.argsort(main_starts, kind="stable")
    main_starts, main_r, main_t = main_starts[order], main_r[order], main_t[order]
    keep = np.ones(len(main_starts), dtype=bool)
    keep[1:] = (main_r[1:] != main_r[:-1]) | (main_t[1:] != main_t[:-1])
    main_starts, main_r, main_t = main_starts[keep], main_r[keep], main_t[keep]

    gd_merged = patterns.merge(zip(gd_lo, gd_hi, strict=True))
    gd_starts, gd_values = _paint(
        np.array([a for a, _ in gd_merged], dtype=np.int64),
        np.array([b for _, b in gd_merged], dtype=np.int64),
        np.ones(len(gd_merged), dtype=np.int64),
        np.zeros(len(gd_merged), dtype=np.int64),
        0,
    )
    strip_starts, strip_values = _paint(
        np.array(st_lo, dtype=np.int64),
        np.array(st_hi, dtype=np.int64),
        np.array(st_val, dtype=np.int64),
        np.array(st_rank, dtype=np.int64),
        0,
    )
    made = rewrites.items

    carrier_starts, carrier_entry, entry_name, entry_len, carriers = _compile_carriers()
    cc_strip = np.array([int(bool(_main_metadata(cc).national_prefix_for_parsing)) for cc in codes], dtype=np.int8)
    arrays: dict[str, Array] = {
        "cc_codes": cc_codes,
        "cc_strip": cc_strip,
        "cc_len": cc_len,
        "cc3": cc3,
        "reason_by_len": reason_by_len.astype(np.int8),
        "keep_by_len": keep_by_len.astype(np.int8),
        "main_starts": main_starts,
        "main_region": main_r.astype(np.int16),
        "main_type": main_t.astype(np.int8),
        "gd_starts": gd_starts,
        "gd_values": gd_values.astype(np.int8),
        "strip_starts": strip_starts,
        "strip_values": strip_values.astype(np.int16),
        "strip_drop": np.array([r.drop for r in made], dtype=np.int8),
        "strip_from": np.array([r.keep_from for r in made], dtype=np.int8),
        "strip_to": np.array([r.keep_to for r in made], dtype=np.int8),
        "strip_put": np.array([int(r.put or "0") for r in made], dtype=np.int64),
        "strip_put_len": np.array([len(r.put) for r in made], dtype=np.int8),
        "carrier_starts": carrier_starts,
        "carrier_entry": carrier_entry.astype(np.int32),
        "entry_name": entry_name.astype(np.int32),
        "entry_len": entry_len.astype(np.int8),
    }
    return arrays, regions, carriers, slow_codes


def _compile_carriers() -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]
]:
    """carrier.name_for_number's prefix walk as a longest-prefix table over 15-digit padded numbers.

    A prefix whose language entry resolves (``prefix._find_lang``, as the walk
    does) is an entry; one that does not is skipped, as the walk skips it. An
    entry may name ``""``, which stops the walk: it is kept.
    """
    from phonenumbers.carrierdata import CARRIER_DATA
    from phonenumbers.prefix import _find_lang

    carriers = [""]
    index = {"": 0}
    lo: list[int] = []
    hi: list[int] = []
    entries: list[int] = []
    ranks: list[int] = []
    entry_name: list[int] = []
    entry_len: list[int] = []
    for prefix, names in CARRIER_DATA.items():
        name = _find_lang(names, "en", None, None)
        if name is None or len(prefix) > MAX_DIGITS:
            continue
        if name not in index:
            index[name] = len(carriers)
            carriers.append(name)
        lo.append(int(prefix.ljust(MAX_DIGITS, "0")))
        hi.append(int(prefix.ljust(MAX_DIGITS, "9")))
        entries.append(len(entry_name))
        ranks.append(len(prefix))
        entry_name.append(index[name])
        entry_len.append(len(prefix))
    starts, values = _paint(
        np.array(lo, dtype=np.int64),
        np.array(hi, dtype=np.int64),
        np.array(entries, dtype=np.int64),
        np.array(ranks, dtype=np.int64),
        -1,
    )
    return starts, values, np.array(entry_name, dtype=np.int64), np.array(entry_len, dtype=np.int64), carriers
