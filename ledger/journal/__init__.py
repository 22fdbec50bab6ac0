"""The journal: entries, canonical bytes, the Merkle tree, checkpoints, proofs and verification.

Pure rules (entry, canonical, merkle, checkpoint) beside the services that append to and read the
books (book, records, keychain, proofs, verify, accounts, balances).
"""
