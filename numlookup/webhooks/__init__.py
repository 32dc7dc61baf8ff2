"""Job webhooks: Standard Webhooks v1 deliveries from an outbox table, retried on the specification's schedule.

``outbox.enqueue`` writes a delivery inside the transaction that ends a job;
``worker.DeliveryWorker`` (a task of every server worker process) claims due
rows with a lease, signs the exact bytes with the account's secret
(``keys``) and POSTs them to a callback URL that ``guard`` checked; every
attempt is recorded for ``numlookup webhooks``.
"""
