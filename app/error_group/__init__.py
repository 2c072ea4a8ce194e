"""Error groups: captured exceptions counted by grouping key and flushed to SQL in batches,
read and resolved through ``/v1/errors``."""
