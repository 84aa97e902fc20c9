"""Registry entries, one module per area (imported by tests.registry)."""
