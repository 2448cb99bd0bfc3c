"""The test lanes: ``unit/`` (starts no process, the fast lane: ``make test-unit``),
``integration/`` (real servers and emulated hardware on ptys) and ``system/`` (the demo, the
installed wheel). Shared helpers are in ``support/`` (on the path through pytest's pythonpath)."""
