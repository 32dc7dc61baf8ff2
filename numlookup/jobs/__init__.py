"""Bulk jobs: many numbers submitted at once, processed in chunks, charged as they are processed.

The path (see docs/architecture.md): ``intake`` reads an upload as it streams,
resolves it with the bulk engine, stages its chunks and reserves credits for the
distinct valid numbers (``billing.reservations``); ``runner`` claims a chunk at a
time (``queue``: a lease any node can take over once it expires), asks the live
service for its routed numbers, and ``queue.settle`` charges the chunk exactly,
from its reservation, in the transaction that stores its results (``render``).
The job's end releases what is left and hands its event to ``events``.
"""
