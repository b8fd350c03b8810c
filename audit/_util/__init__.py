"""Helpers every layer may use: errors, paths and size limits, atomic files, validation of untrusted values,
progress, threads."""
