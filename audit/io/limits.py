"""The readers' size limits, in a module that imports nothing: the command line's help shows them without
loading torch or pandas."""

# Parameters a checkpoint may declare: float32 weights of 4 GB, held about three times over while
# loading and explaining (file, module, gradients), fit a 24 GB machine.
MAX_PARAMETERS = 1_000_000_000
STREAM_ABOVE = 32 << 20  # bytes the data would take in memory above which `audit report` streams unasked
