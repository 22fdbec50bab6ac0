"""The journal: entries, canonical bytes, the Merkle tree, checkpoints, proofs and verification.

Pure rules (entry, canonical, merkle; checkpoint signs and verifies tree heads and also keeps the
key file) beside the services that append to and read the books (book, records, keychain, proofs,
verify, accounts, balances).
"""
