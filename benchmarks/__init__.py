"""The benchmarks of docs/performance.md (``make bench``: ``python -m benchmarks.run``)."""
