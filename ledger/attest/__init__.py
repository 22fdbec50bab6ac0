"""Attestations: the books bound to the chain at a block, and the vaults' BIP-322 proof of control.

Nothing is imported here: the offline verifier imports :mod:`ledger.attest.control` (and what it
needs) with only the standard library, ``cryptography`` and ``coincurve`` installed.
"""
