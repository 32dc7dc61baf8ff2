"""A Core INSERT (or upsert) compiled once per dialect, its rows handed to the driver's ``executemany``.

Why: the statements that run in every group commit, on the charges' thread
(the ledger's rows, the live cache's answers, the sources' usage counts), cost
more to build than to run when SQLAlchemy builds them per call: compiling the
statement, then each row's parameters anew (names, defaults, each value's type
processor), some 25 µs a row, with the event loop's GIL held meanwhile. Here
SQLAlchemy compiles the statement once, for the columns given; a row becomes
one tuple of its values put through the same type processors SQLAlchemy would
apply (``UTCDateTime``, SQLite's booleans and dates), and the driver gets the
SQL and the parameters in the shape SQLAlchemy would give it (a tuple for a
positional paramstyle, a dict for a named one). The tests beside each user
prove the rows stored are those SQLAlchemy's own statement stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Built = TypeVar("Built")  # what ``per_dialect`` builds: a DriverRows, or a set of compiled statements

Processor = Callable[[Any], Any]
Parameters = list[tuple[object, ...]] | list[dict[str, object]]


class DriverRows:
    """``statement`` for ``dialect``, binding exactly ``columns`` of ``table`` once each."""

    def __init__(self, statement: ClauseElement, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(columns)))
        order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        if sorted(order) != sorted(columns):  # the compiled SQL binds exactly the columns, once each
            raise RuntimeError(f"{table.name}: the statement binds {order}, not {list(columns)}")
        self.sql = compiled.string
        self.positional = compiled.positional
        self.order = tuple(order)
        # Where each bound value sits in a row given in ``columns`` order; None: the same order.
        self.at: tuple[int, ...] | None = (
            None if self.order == tuple(columns) else tuple(list(columns).index(name) for name in self.order)
        )
        types = {c.name: c.type.dialect_impl(dialect) for c in table.columns}
        processors: list[Processor | None] = [types[name].bind_processor(dialect) for name in self.order]
        self.processors = processors
        # (position, processor) of the columns that have one: on SQLite the dates, times and booleans.
        self.active = [(i, process) for i, process in enumerate(processors) if process is not None]

    def processed(self, rows: Sequence[Mapping[str, object]]) -> list[tuple[object, ...]]:
        """Each row's values in bind order, through their type processors (None stays None)."""
        order = self.order
        return self._through_processors([[row[name] for name in order] for row in rows])

    def processed_values(self, rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
        """:meth:`processed` of rows given as values in ``columns`` order (the constructor's), not mappings.

        Why: the group commit's ledger rows are made for this statement alone, and
        a dict per row, then read back by name, was a third of their Python work.
        """
        at = self.at
        if at is None:  # bound in the columns' own order
            return self._through_processors([list(row) for row in rows]) if self.active else [tuple(r) for r in rows]
        return self._through_processors([[row[i] for i in at] for row in rows])

    def _through_processors(self, rows: list[list[object]]) -> list[tuple[object, ...]]:
        """Rows of values in bind order, each through its column's type processor (None stays None).

        A value that is the very object the column's previous row held is not
        processed again: a group commit's rows share one ``created_at``, and its
        processing (``UTCDateTime``, then SQLite's date format) was a third of the
        rows' Python work. A processor is a function of its value, so this
        changes no parameter.
        """
        active = self.active
        last: list[tuple[object, object]] = [(None, None)] * len(active)  # per active column: (value, processed)
        processed: list[tuple[object, ...]] = []
        for values in rows:
            for k, (i, process) in enumerate(active):
                value = values[i]
                if value is not None:
                    seen, done = last[k]
                    if value is not seen:
                        done = process(value)
                        last[k] = (value, done)
                    values[i] = done
            processed.append(tuple(values))
        return processed

    def run_on(self, cursor: Any, processed: list[tuple[object, ...]]) -> None:
        """Execute for every processed row on a DB-API cursor of the caller's transaction."""
        cursor.executemany(self.sql, self.shaped(processed))

    def shaped(self, processed: list[tuple[object, ...]]) -> Parameters:
        """Processed rows as the driver takes them: tuples for a positional paramstyle, else dicts."""
        if self.positional:
            return processed
        return [dict(zip(self.order, values, strict=True)) for values in processed]

    def run(self, conn: Connection, processed: list[tuple[object, ...]]) -> None:
        """Execute for every processed row, inside the caller's transaction."""
        conn.exec_driver_sql(self.sql, self.shaped(processed))


def per_dialect(build: Callable[[Dialect], Built]) -> Callable[[Dialect], Built]:
    """``build(dialect)`` once per dialect name, the statements kept for the process."""
    built: dict[str, Built] = {}

    def of(dialect: Dialect) -> Built:
        found = built.get(dialect.name)
        if found is None:
            found = built[dialect.name] = build(dialect)
        return found

    return of
