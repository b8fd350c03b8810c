"""Audits of data read in chunks: sources that yield `Dataset` chunks, seeded samples drawn while reading,
and the streamed run."""
