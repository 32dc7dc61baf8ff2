"""The schema, as SQLAlchemy Core tables. Migrations mirror this file.

Money columns are integers of micro-credits (see ``billing.money``): exact, and
the same type on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite drops the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("api_username", String(64), nullable=False, unique=True),
    Column("secret_salt", LargeBinary(32), nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("balance", BigInteger, nullable=False, default=0),
    # Credits held for running bulk jobs (see ``billing.reservations``): the account
    # can spend ``balance - reserved``; a job's chunks are charged from its reservation.
    Column("reserved", BigInteger, nullable=False, default=0, server_default="0"),
    # Per-account price per chargeable number; NULL means the server default.
    Column("price", BigInteger, nullable=True),
    # Per-account status vocabulary; NULL means the server default.
    Column("status_style", String(16), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("balance >= 0", name="ck_accounts_balance_not_negative"),
    # PostgreSQL only (migration 0009): SQLite cannot add a table constraint without
    # rebuilding the table, and rebuilding ``accounts`` would cascade into its children.
    CheckConstraint("reserved >= 0 AND reserved <= balance", name="ck_accounts_reserved_within_balance"),
)

allowed_networks = Table(
    "allowed_networks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("cidr", String(64), nullable=False),
    UniqueConstraint("account_id", "cidr", name="uq_allowed_networks_account_cidr"),
)

# One row whose counter every account change and top-up raises (in its own
# transaction): workers cache accounts and drop the cache when it moves.
account_epoch = Table(
    "account_epoch",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

# One row that each readiness probe rewrites and commits (see ``store.write_probe``).
write_probe = Table(
    "write_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("written_at", UTCDateTime, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False),
    # "lookup" for a charged request, "credit" for credits added by an operator,
    # "adjustment" for an operator's correction (either way, with a note).
    Column("kind", String(16), nullable=False),
    # The API request that caused a lookup charge; NULL for operator credits.
    Column("request_id", String(64), nullable=True, unique=True),
    # Signed micro-credits: negative for charges, positive for credits.
    Column("amount", BigInteger, nullable=False),
    Column("numbers", Integer, nullable=False, default=0),
    Column("balance_after", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # A charge's numbers by answer class (see ``billing.rollup``): offline, from the
    # live cache, live, and invalid (charged nothing). NULL on credit and adjustment
    # rows, and on lookup rows written before migration 0010.
    Column("offline", Integer, nullable=True),
    Column("cached", Integer, nullable=True),
    Column("live", Integer, nullable=True),
    Column("invalid", Integer, nullable=True),
)
Index("ix_ledger_account_id_id", ledger.c.account_id, ledger.c.id)

# The ledger's charges (``lookup`` and ``job`` rows) folded per UTC hour and account
# by ``billing.rollup``, so a chart over months reads hours, not ledger rows.
# ``credits`` is micro-credits spent (positive). ``traffic_rollup`` is the same
# per hour across accounts: the operator's chart reads one row per hour.
usage_rollup = Table(
    "usage_rollup",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", UTCDateTime, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("offline", BigInteger, nullable=False),
    Column("cached", BigInteger, nullable=False),
    Column("live", BigInteger, nullable=False),
    Column("invalid", BigInteger, nullable=False),
    Column("credits", BigInteger, nullable=False),
)

Index("ix_usage_rollup_hour", usage_rollup.c.hour)  # the hours at the edges of a range, across accounts

# The same per UTC day and account (migration 0011): the operator's top accounts
# over a month read 30 rows per account, not 720.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("day", UTCDateTime, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("offline", BigInteger, nullable=False),
    Column("cached", BigInteger, nullable=False),
    Column("live", BigInteger, nullable=False),
    Column("invalid", BigInteger, nullable=False),
    Column("credits", BigInteger, nullable=False),
)
Index("ix_usage_daily_day", usage_daily.c.day)

traffic_rollup = Table(
    "traffic_rollup",
    metadata,
    Column("hour", UTCDateTime, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("offline", BigInteger, nullable=False),
    Column("cached", BigInteger, nullable=False),
    Column("live", BigInteger, nullable=False),
    Column("invalid", BigInteger, nullable=False),
    Column("credits", BigInteger, nullable=False),
)

# The rollup's watermark: one row, every ledger id up to ``last_id`` is folded
# except those in ``usage_rollup_gaps``. Why gaps: PostgreSQL hands out ids when a
# row is inserted, not when it commits, so id 7 can become visible after id 8; an
# id missing below the watermark is kept there (with when it was first missed) and
# folded when its row appears, or forgotten once no transaction can still hold it.
usage_rollup_state = Table(
    "usage_rollup_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

usage_rollup_gaps = Table(
    "usage_rollup_gaps",
    metadata,
    Column("ledger_id", BigInteger, primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
)

# One row per server worker process (see ``store.nodes``), rewritten by its
# heartbeat every few seconds: which workers served lately, and whether ready.
nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(120), primary_key=True),  # host:pid:random, new at every start
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("ready", Boolean, nullable=False),
    Column("version", String(40), nullable=False),
    Column("requests", BigInteger, nullable=False),  # requests this worker served since it started
)
Index("ix_nodes_last_seen", nodes.c.last_seen)

# The key that signs console sessions (see ``store.console_key``): one row, made by
# the first worker that needs it, so a session from one node is good on every node.
console_keys = Table(
    "console_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", LargeBinary(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    # "ranges" or "ported"
    Column("kind", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("format", String(16), nullable=False),
    Column("source", Text, nullable=False),
    # "full" replaces the dataset, "delta" changes the previous version
    Column("mode", String(8), nullable=False),
    # rows in the resulting table, and lines read / skipped from the file
    Column("rows", BigInteger, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("skipped", BigInteger, nullable=False),
    # folder of the compiled table, relative to the data directory
    Column("path", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "version", name="uq_datasets_kind_version"),
)

# Copies of compiled dataset versions (see ``datasets.distribution``): each file of
# a version's folder in chunks, with the whole file's size and SHA-256 on every row.
dataset_files = Table(
    "dataset_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", Text, nullable=False),  # the version's folder, as datasets.path
    Column("name", String(64), nullable=False),
    Column("chunk", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("path", "name", "chunk", name="uq_dataset_files_path_name_chunk"),
)

# Live answers, shared by every worker process. One row per number: the newest
# answer a live source gave. ``checked_at`` dates the reachability class
# (reachable, roaming, roaming network), ``network_checked_at`` the porting class
# (the current network); each class has its own TTL in the settings.
live_cache = Table(
    "live_cache",
    metadata,
    Column("number", String(32), primary_key=True),  # E.164 with "+"
    Column("source", String(80), nullable=False),  # osmo-hlr or upstream:<name>
    Column("reachable", Boolean, nullable=True),  # NULL: the source tells porting only (ENUM)
    Column("roaming", Boolean, nullable=True),
    Column("roaming_mccmnc", String(6), nullable=True),
    Column("roaming_gt", String(32), nullable=True),
    Column("ported_mccmnc", String(6), nullable=True),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("network_checked_at", UTCDateTime, nullable=False),
    # The network says the number is not in service.
    Column("invalid", Boolean, nullable=False, server_default=false()),
    # Porting and roaming networks a source names without an MCC/MNC (name, country calling code).
    Column("ported_known", Boolean, nullable=True),
    Column("ported_name", String(120), nullable=True),
    Column("ported_country", String(4), nullable=True),
    Column("roaming_name", String(120), nullable=True),
    Column("roaming_country", String(4), nullable=True),
)
Index("ix_live_cache_network_checked_at", live_cache.c.network_checked_at)

# What each live source did and cost, per UTC day (see ``live.usage``): increments
# added by every worker of every node. Money columns are millionths: of the
# provider's ``currency`` for ``cost_micros``, micro-credits for ``credits_micros``.
source_usage = Table(
    "source_usage",
    metadata,
    Column("day", Date, primary_key=True),
    Column("source", String(80), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("queries", BigInteger, nullable=False),
    Column("numbers", BigInteger, nullable=False),
    Column("answered", BigInteger, nullable=False),
    Column("failures", BigInteger, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("credits_micros", BigInteger, nullable=False),
)

# Bulk jobs (see ``numlookup.jobs``). ``public_id`` is what the API shows (``job_…``);
# ``id`` orders jobs (newest first) and keys their chunks. Prices are the account's
# per answer class when the job was submitted: the job is charged those. Counts:
# ``total = valid + invalid + duplicate`` (distinct valid numbers, distinct invalid
# inputs, repeats of either), known at submit; ``processed_count`` grows per chunk.
# ``reserved`` is what the job still holds of the account's ``reserved``.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False),
    # RECEIVING (an upload in progress: invisible), QUEUED, IN_PROGRESS, COMPLETED, FAILED, STOP_REQUESTED, STOPPED
    Column("status", String(16), nullable=False),
    Column("friendly_name", String(200), nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("max_age", Float, nullable=True),
    Column("style", String(16), nullable=False),  # the status words of its results
    Column("price_offline", BigInteger, nullable=False),
    Column("price_cache", BigInteger, nullable=False),
    Column("price_live", BigInteger, nullable=False),
    Column("total_count", BigInteger, nullable=False),
    Column("processed_count", BigInteger, nullable=False),
    Column("valid_count", BigInteger, nullable=False),
    Column("invalid_count", BigInteger, nullable=False),
    Column("duplicate_count", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=False),
    Column("chunks_total", Integer, nullable=False),
    Column("chunks_done", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),  # results deleted after this (set when the job ends)
    Column("claimed_at", UTCDateTime, nullable=False),  # the last claim of a chunk: jobs take turns
)
Index("ix_jobs_account_id_id", jobs.c.account_id, jobs.c.id)
Index("ix_jobs_status", jobs.c.status)

# A job's input in chunks, as the submit resolved it (``prepared``: the resolved
# columns, compressed; emptied once the chunk is done). ``firsts`` marks the rows
# charged here (packed bits: a number's first occurrence in the job, if valid),
# ``reserve`` what the job reserved for them. A worker holds a chunk while
# ``lease_until`` is in the future; an expired lease is anyone's to take over.
job_chunks = Table(
    "job_chunks",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("routed", Integer, nullable=False),  # rows with a live route: only those need the live service
    Column("state", String(8), nullable=False),  # pending, done
    Column("reserve", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=True),
    Column("firsts", LargeBinary, nullable=True),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("prepared", LargeBinary, nullable=False),
)
Index("ix_job_chunks_state_job_id", job_chunks.c.state, job_chunks.c.job_id)

# A done chunk's results (see ``jobs.render``): what any node needs to serve them as CSV or JSON lines.
job_results = Table(
    "job_results",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Idempotency-Key (see ``api.idempotency``): per account and key, the request's
# fingerprint (route and body) and, once it answered, the stored response. The row
# is committed before the request is processed (``running``, with a lease: a
# crashed request frees the key when the lease ends) and becomes ``done`` in the
# transaction that charges the request, so a replay record and its charge commit together.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("route", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # SHA-256 hex of route and body
    Column("state", String(8), nullable=False),  # "running" or "done"
    Column("token", String(32), nullable=False),  # which request holds the key
    Column("lease_until", UTCDateTime, nullable=True),
    Column("status", Integer, nullable=True),
    Column("headers", Text, nullable=True),  # JSON object of the response headers replayed
    Column("body", LargeBinary, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_idempotency_keys_expires_at", idempotency_keys.c.expires_at)

# Per-account webhook settings (see ``webhooks.secrets``): the signing secret
# (``whsec_…``; kept, not hashed, because every delivery is signed with it), the
# one it replaced while the rotation's grace lasts, and whether a receiver's 410
# turned the account's callbacks off.
account_webhooks = Table(
    "account_webhooks",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", String(64), nullable=False),
    Column("previous_secret", String(64), nullable=True),
    Column("previous_until", UTCDateTime, nullable=True),
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The webhook outbox (see ``webhooks.outbox``): one row per event to deliver,
# inserted in the transaction that ends the job. ``state``: pending (due at
# ``next_attempt_at``; claimed while ``lease_until`` is in the future), delivered,
# failed (the schedule ran out, or 410), unsent (the account's callbacks were off).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("webhook_id", String(40), nullable=False, unique=True),  # the webhook-id header, the same on every retry
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the exact bytes sent and signed
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("lease_token", String(32), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
)
Index("ix_webhook_deliveries_state_next", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_account_id", webhook_deliveries.c.account_id, webhook_deliveries.c.id)

# Every attempt of every delivery, for operators (``numlookup webhooks show``).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status", Integer, nullable=True),  # the receiver's HTTP status; NULL: no answer
    Column("error", Text, nullable=True),
)
Index("ix_webhook_attempts_delivery_id", webhook_attempts.c.delivery_id, webhook_attempts.c.attempt)
