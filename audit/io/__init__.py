"""Reading and writing files: one reader per data format (tables, NPZ, image folders), whole or chunked; the
built-in datasets and their files; checkpoints and Hugging Face folders read and checked as plain data."""
