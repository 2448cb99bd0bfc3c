"""The tests' Chromium: the harness lives in farmwatch_local.browser (the benchmarks and the demo
check use it too); import it from there or from here."""

from farmwatch_local.browser import (
    DESKTOP,
    PHONE,
    BrowserMissingError,
    chromium,
    set_viewport,
    transfer_sizes,
)

__all__ = ["DESKTOP", "PHONE", "BrowserMissingError", "chromium", "set_viewport", "transfer_sizes"]
