"""``make bench``: the measuring instrument for Trawl's cost (issue 13).

Every figure is a paired comparison measured in one run: variants are interleaved over several
rounds, the process under test is pinned to one core (everything else to the other) and its CPU
time is read from ``/proc/<pid>/stat``. ``python -m tests.bench --help``; docs/performance.md
shows the results and how to reproduce them. Not collected by pytest (no ``test_*`` modules);
timings are never asserted in ``make test``.
"""
