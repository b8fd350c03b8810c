"""Robustness: attacks over an epsilon sweep, text attacks, corruptions, and checks against gradient masking."""
