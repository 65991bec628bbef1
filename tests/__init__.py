"""The test suite (a regular package: split-lang 2.1.1 installs a top-level ``tests`` package that would shadow ours)."""
