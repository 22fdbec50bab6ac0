"""Shared pytest configuration: fixture modules live in ``tests/fixtures``.

- ``tests/fixtures/node.py``: one real regtest bitcoind per session, fresh wallets per test.
- ``tests/fixtures/db.py``: migrated databases on SQLite and PostgreSQL.
"""

pytest_plugins = ["tests.fixtures.node", "tests.fixtures.db", "tests.fixtures.reserve"]
