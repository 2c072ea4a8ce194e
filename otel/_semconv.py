"""Process-wide defaults that must be in place before contrib instrumentations load.

The contrib packages read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, the first
time any instrumentor initialises, so this module is imported first by ``otel/__init__``.
An explicit value in the environment always wins.
"""

from __future__ import annotations

import os

SEMCONV_OPT_IN_DEFAULT = "http,database"

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", SEMCONV_OPT_IN_DEFAULT)
