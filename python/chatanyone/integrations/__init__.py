"""Integrations of chatanyone into other systems (each needs its own extra)."""
