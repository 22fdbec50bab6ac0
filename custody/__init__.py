"""The Bitcoin side of reserve-ledger: keys, descriptors, multisig policy, the node's JSON-RPC and
watch-only wallets. Knows nothing about SQL and never imports :mod:`ledger`."""
