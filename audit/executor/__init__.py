"""The one executor: analyzers over a source of chunks (in memory: one chunk) and a predictor; `AuditRun` and
`Comparison`, the documents a run and a comparison produce."""
