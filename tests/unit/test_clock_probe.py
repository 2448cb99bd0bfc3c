"""The kernel's NTP probe of the clock guard: an answer from adjtimex without a child process
(it is asked every few seconds until the clock is trusted, on a solar-powered Pi). The unit
lane refuses to start processes (``conftest.py``): a probe that started one would fail here."""

from __future__ import annotations

from edge.clock_guard import kernel_sync_probe


def test_the_kernel_probe_answers_without_starting_a_process() -> None:
    answers = {kernel_sync_probe() for _ in range(3)}
    # Linux always has adjtimex: an answer (True or False), never None ("cannot tell")
    assert answers in ({True}, {False})
