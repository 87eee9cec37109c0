"""Operator jobs: replay and backfill, dead letters, status, the demo, kcat, file import, fusion training."""
