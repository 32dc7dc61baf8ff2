"""Expand libphonenumber's digit regexes into explicit digit strings and numeric intervals.

libphonenumber decides validity and type with regexes over the national
significant number (``[2-9]\\d{9}``, ``7(?:[1-57-9]\\d|6[0-8])\\d{6}``, …). Running
a regex per number and per type is what makes the library slow. These regexes
are finite: no unbounded repetition survives once the length is fixed, so each
one is the union of a modest number of *digit-set sequences* (one set of
allowed digits per position). A sequence whose tail is all ``\\d`` is a numeric
interval, so a pattern restricted to a set of lengths becomes a list of
intervals that a sorted table answers with one binary search.

The expansion walks the parse tree of Python's own regex compiler, so it sees
exactly what ``re`` sees. Anything outside the subset libphonenumber uses
(look-arounds, back-references, ``.``) raises :class:`TooComplex`, as does an
expansion larger than the cap; callers then keep such patterns on the regex
path rather than guess.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

try:  # Python 3.11 renamed sre_parse to re._parser; both expose the same tree.
    from re import _constants as _c  # type: ignore[attr-defined,unused-ignore]  # private: stubbed only by newer typeshed
    from re import _parser as _sre  # type: ignore[attr-defined,unused-ignore]  # private: stubbed only by newer typeshed
except ImportError:  # pragma: no cover
    import sre_constants as _c
    import sre_parse as _sre

FULL = (1 << 10) - 1  # a digit set as a 10-bit mask; FULL is \d
MAX_SEQUENCES = 200_000
MAX_INTERVALS = 500_000

Mask = int
Seq = tuple[Mask, ...]
Interval = tuple[int, int]


class TooComplex(ValueError):
    """The pattern uses a construct we do not expand, or expands beyond the cap."""


_ZERO = ord("0")


def _digit_mask(items: Sequence[tuple[Any, Any]]) -> Mask:
    """The digits a character class ``[...]`` accepts (non-digits cannot occur in a number)."""
    mask = 0
    negate = False
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            code = int(av)
            if _ZERO <= code <= _ZERO + 9:
                mask |= 1 << (code - _ZERO)
        elif op is _c.RANGE:
            lo, hi = av
            for code in range(max(lo, _ZERO), min(hi, _ZERO + 9) + 1):
                mask |= 1 << (code - _ZERO)
        elif op is _c.CATEGORY and av is _c.CATEGORY_DIGIT:
            mask = FULL
        else:
            raise TooComplex(f"character class item {op} {av}")
    return (FULL & ~mask) if negate else mask


class _Expander:
    """Enumerates the strings a parsed pattern matches, in the order ``re`` tries them.

    A result is a list of ``(sequence, anchored)`` pairs. The order is the
    backtracking order (alternatives left to right, greedy repetition first
    tries one more round), which matters when the pattern is used with
    ``re.match`` as a prefix, as national-prefix patterns are: the first
    sequence that is a prefix of a number is the match ``re`` returns.
    ``anchored`` marks a path that passed ``$``: it matches only a whole string.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.count = 0

    def _bump(self, n: int) -> None:
        self.count += n
        if self.count > MAX_SEQUENCES:
            raise TooComplex("too many sequences")

    def seq(self, items: Sequence[tuple[Any, Any]]) -> list[tuple[Seq, bool]]:
        out: list[tuple[Seq, bool]] = [((), False)]
        for item in items:
            parts = self.item(item)
            nxt: list[tuple[Seq, bool]] = []
            for head, anchored in out:
                for tail, tail_anchored in parts:
                    if anchored and tail:  # nothing can follow the end of the string
                        continue
                    if len(head) + len(tail) > self.max_len:
                        continue
                    nxt.append((head + tail, anchored or tail_anchored))
            self._bump(len(nxt))
            out = nxt
            if not out:
                break
        return out

    def item(self, item: tuple[Any, Any]) -> list[tuple[Seq, bool]]:
        op, av = item
        if op is _c.LITERAL:
            code = int(av)
            if not _ZERO <= code <= _ZERO + 9:
                return []
            return [((1 << (code - _ZERO),), False)]
        if op is _c.NOT_LITERAL:  # sre writes [^0] as NOT_LITERAL
            code = int(av)
            mask = FULL & ~(1 << (code - _ZERO)) if _ZERO <= code <= _ZERO + 9 else FULL
            return [((mask,), False)]
        if op is _c.IN:
            mask = _digit_mask(av)
            return [((mask,), False)] if mask else []
        if op is _c.BRANCH:
            _, branches = av
            result: list[tuple[Seq, bool]] = []
            for branch in branches:
                result.extend(self.seq(list(branch)))
            return result
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise TooComplex("inline flags")
            return self.seq(list(sub))
        if op is _c.MAX_REPEAT or op is _c.MIN_REPEAT:
            lo, hi, sub = av
            body = self.seq(list(sub))
            if any(len(s) == 0 for s, _ in body):
                raise TooComplex("repetition of something that can match empty")
            if hi is _c.MAXREPEAT:
                hi = self.max_len
            return self._repeat(body, lo, min(hi, self.max_len), greedy=op is _c.MAX_REPEAT)
        if op is _c.AT:
            if av is _c.AT_END or av is _c.AT_END_STRING:
                return [((), True)]
            if av is _c.AT_BEGINNING or av is _c.AT_BEGINNING_STRING:
                return [((), False)]  # we only ever match at the start
            raise TooComplex(f"anchor {av}")
        raise TooComplex(f"regex construct {op}")

    def _repeat(self, body: list[tuple[Seq, bool]], lo: int, hi: int, greedy: bool) -> list[tuple[Seq, bool]]:
        """``body{lo,hi}`` in backtracking order (depth first: one more round before stopping)."""

        @cache
        def rep(need: int, room: int, budget: int) -> tuple[tuple[Seq, bool], ...]:
            if budget < 0:
                return ()
            more: list[tuple[Seq, bool]] = []
            if room > 0:
                for head, anchored in body:
                    if len(head) > budget:
                        continue
                    if anchored:
                        if need <= 1:
                            more.append((head, True))
                        continue
                    for tail, tail_anchored in rep(max(need - 1, 0), room - 1, budget - len(head)):
                        more.append((head + tail, tail_anchored))
            self._bump(len(more))
            if need > 0:
                return tuple(more)
            stop: list[tuple[Seq, bool]] = [((), False)]
            return tuple(more + stop) if greedy else tuple(stop + more)

        return list(rep(lo, hi, self.max_len))


def _parse(pattern: str) -> list[tuple[Any, Any]]:
    return list(_sre.parse(pattern))


@lru_cache(maxsize=4096)
def match_sequences(pattern: str, max_len: int) -> tuple[tuple[Seq, bool], ...]:
    """Every digit-set sequence of at most ``max_len`` positions the pattern can match, in ``re`` order."""
    return tuple(_Expander(max_len).seq(_parse(pattern)))


def sequence_intervals(seq: Seq, free: int, limit: list[int]) -> Iterable[Interval]:
    """``seq`` followed by ``free`` unconstrained digits, as intervals of integers."""
    last = len(seq) - 1
    while last >= 0 and seq[last] == FULL:
        last -= 1
    free += len(seq) - 1 - last
    if last < 0:
        yield 0, 10**free - 1
        return
    scale = 10**free
    prefixes = [0]
    for mask in seq[:last]:
        digits = [d for d in range(10) if mask >> d & 1]
        prefixes = [p * 10 + d for p in prefixes for d in digits]
        if len(prefixes) > MAX_INTERVALS:
            raise TooComplex("too many intervals")
    runs: list[tuple[int, int]] = []
    mask = seq[last]
    d = 0
    while d < 10:
        if mask >> d & 1:
            start = d
            while d < 10 and mask >> d & 1:
                d += 1
            runs.append((start, d - 1))
        else:
            d += 1
    limit[0] += len(prefixes) * len(runs)
    if limit[0] > MAX_INTERVALS:
        raise TooComplex("too many intervals")
    for p in prefixes:
        for a, b in runs:
            yield (p * 10 + a) * scale, (p * 10 + b) * scale + scale - 1


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and join overlapping or touching intervals."""
    out: list[Interval] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


@lru_cache(maxsize=8192)
def full_match_intervals(pattern: str, lengths: tuple[int, ...]) -> dict[int, list[Interval]]:
    """Intervals of the ``n``-digit strings that ``re.fullmatch(pattern, s)`` accepts, per length ``n``.

    A string ``s`` of length ``n`` matches iff ``lo <= int(s) <= hi`` for one of
    ``result[n]`` (leading zeros are fine: the length is fixed).
    """
    if not lengths:
        return {}
    wanted = set(lengths)
    per_len: dict[int, list[Interval]] = {n: [] for n in lengths}
    limit = [0]
    for seq, _anchored in match_sequences(pattern, max(lengths)):
        if len(seq) in wanted:
            per_len[len(seq)].extend(sequence_intervals(seq, 0, limit))
    return {n: merge(v) for n, v in per_len.items()}


@lru_cache(maxsize=4096)
def prefix_intervals(pattern: str, lengths: tuple[int, ...]) -> dict[int, list[Interval]]:
    """Intervals of the ``n``-digit strings for which ``re.match(pattern, s)`` succeeds, per length ``n``.

    This is the semantics of libphonenumber's ``leading_digits``: the pattern
    need only match a prefix.
    """
    if not lengths:
        return {}
    per_len: dict[int, list[Interval]] = {n: [] for n in lengths}
    limit = [0]
    for seq, anchored in match_sequences(pattern, max(lengths)):
        for n in lengths:
            if len(seq) > n or (anchored and len(seq) != n):
                continue
            per_len[n].extend(sequence_intervals(seq, n - len(seq), limit))
    return {n: merge(v) for n, v in per_len.items()}


def literal_strings(pattern: str, max_len: int) -> list[tuple[str, bool]]:
    """The strings a finite pattern matches as ``(string, anchored)``, in the order ``re`` tries them.

    Used for national-prefix patterns, whose languages are tiny; the cap keeps
    a surprising pattern from exploding.
    """
    out: list[tuple[str, bool]] = []
    for seq, anchored in match_sequences(pattern, max_len):
        strings = [""]
        for mask in seq:
            strings = [s + str(d) for s in strings for d in range(10) if mask >> d & 1]
            if len(strings) > MAX_INTERVALS:
                raise TooComplex("too many strings")
        out.extend((s, anchored) for s in strings)
        if len(out) > MAX_INTERVALS:
            raise TooComplex("too many strings")
    return out


def check(pattern: str, n: int, intervals: Sequence[Interval], samples: Iterable[int]) -> list[str]:
    """Strings among ``samples`` (as ``n``-digit numbers) where intervals and ``re.fullmatch`` disagree.

    For tests: an expansion is right when it answers like the regex does.
    """
    compiled = re.compile(pattern)
    los = [lo for lo, _ in intervals]
    bad = []
    for value in samples:
        s = str(value).zfill(n)
        i = bisect.bisect_right(los, value) - 1
        inside = i >= 0 and value <= intervals[i][1]
        if inside != bool(compiled.fullmatch(s)):
            bad.append(s)
    return bad
