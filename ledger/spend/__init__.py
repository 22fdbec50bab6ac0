"""Spending under policy: the per-vault policy store, spends and their gate (issue 10)."""
