"""Operator data: range and ported-number imports, their catalogue, and following new versions."""
