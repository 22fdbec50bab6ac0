"""Governed changes: what widens what can leave a vault, approved by its holders (docs/governance.md)."""
