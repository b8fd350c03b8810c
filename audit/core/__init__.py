"""The types everything else speaks: `Dataset`, `Model` and its `Task` (encoders, adapters, post-processing),
`Result`, `Finding` and `Figure`, the `Analyzer` interface and its registry, sensitive groups, seeded sampling."""
