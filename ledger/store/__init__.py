"""Storage: the tables, the engine and its guards, migration glue."""
