"""Test support shared by tests and benches: media writers, a local media server, contract checks."""
