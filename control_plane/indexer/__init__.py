"""The chain indexer: the mirror tables it alone writes (`models`), their queries
(`repository`) and the sync loop (`sync`). See docs/architecture.md for its layers."""
