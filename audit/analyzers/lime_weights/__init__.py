"""LIME: local surrogate weights, seeded and batched."""
