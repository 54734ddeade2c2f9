"""The pipeline's steps: plain functions, data in, data out. No checkpoint I/O here."""
