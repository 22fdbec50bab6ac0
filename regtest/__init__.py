"""Real regtest nodes for tests and the demo: the bitcoind installer and the node harness."""
