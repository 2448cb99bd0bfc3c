"""Frame counters: new uplinks, the same uplink again, rejoins, lost uplinks."""

from __future__ import annotations

from edge.lorawan.sequence import DeviceMark, Verdict, dedup_key, joined, judge, owner

T = 1_795_000_000_000
MIN = 60_000


def after(mark: DeviceMark, fcnt: int, time_ms: int, *, dedup: int = 0, parts: int = 1) -> Verdict:
    return judge(mark, fcnt=fcnt, time_ms=time_ms, own_time=True, dedup=dedup, parts=parts)


def done(verdict: Verdict, parts: int = 1) -> DeviceMark:
    return verdict.after(parts)


def test_the_first_uplink_and_the_next_ones_count_what_was_never_received() -> None:
    first = after(DeviceMark(), 57, T)
    assert first.kind == "new"
    assert first.mark.lost == 0  # nothing is known about the counters before the first one
    mark = done(first)
    second = after(mark, 58, T + 20 * MIN)
    assert (second.kind, second.mark.lost) == ("new", 0)
    third = after(done(second), 62, T + 100 * MIN)
    assert (third.kind, third.mark.lost, third.mark.fcnt) == ("new", 3, 62)


def test_the_same_uplink_again_is_a_duplicate_by_counter_and_time_or_dedup_id() -> None:
    mark = done(after(DeviceMark(), 10, T, dedup=dedup_key("a")))
    assert after(mark, 10, T, dedup=dedup_key("a")).kind == "duplicate"
    # without a deduplication id (The Things Stack): counter and network time
    plain = done(after(DeviceMark(), 10, T))
    assert after(plain, 10, T).kind == "duplicate"
    # an older uplink of the session delivered again is a duplicate too
    later = done(after(plain, 11, T + 20 * MIN))
    assert after(later, 10, T).kind == "duplicate"


def test_an_uplink_half_committed_is_resumed_after_its_committed_parts() -> None:
    verdict = after(DeviceMark(), 10, T, dedup=dedup_key("a"), parts=3)
    crashed = verdict.after(1)  # the agent stopped after the first part's transaction
    again = after(crashed, 10, T, dedup=dedup_key("a"), parts=3)
    assert (again.kind, again.skip) == ("resume", 1)
    assert after(again.after(3), 10, T, dedup=dedup_key("a"), parts=3).kind == "duplicate"


def test_a_counter_reset_with_a_later_network_time_is_a_new_session() -> None:
    mark = done(after(DeviceMark(), 4000, T))
    rejoined = after(mark, 0, T + 30 * MIN)
    assert (rejoined.kind, rejoined.rejoined, rejoined.mark.rejoins) == ("new", True, 1)
    assert rejoined.mark.lost == 0  # it is the first uplink of the new session
    missed_two = after(mark, 2, T + 30 * MIN)
    assert missed_two.mark.lost == 2  # 0 and 1 of the new session never arrived
    # a session restarted at the very counter of the last uplink, later, is new as well
    same_counter = after(done(after(DeviceMark(), 0, T)), 0, T + 20 * MIN)
    assert same_counter.kind == "new"


def test_a_join_event_starts_a_new_session_even_without_a_network_time() -> None:
    mark = done(after(DeviceMark(), 12, T, dedup=dedup_key("a")))
    after_join = joined(mark, T + 10 * MIN)
    assert after_join is not None
    verdict = judge(after_join, fcnt=0, time_ms=0, own_time=False, dedup=0, parts=1)
    assert (verdict.kind, verdict.mark.rejoins, verdict.mark.joined_ms) == ("new", 1, 0)
    # without the join, an uplink with no time of its own and an old counter is a repeat
    assert judge(mark, fcnt=0, time_ms=0, own_time=False, dedup=0, parts=1).kind == "duplicate"
    # a join event older than the last uplink (repeated, or reported late) changes nothing
    assert joined(mark, T - MIN) is None


def test_the_mark_round_trips_through_the_outbox_state() -> None:
    mark = DeviceMark(fcnt=70_000, time_ms=T, parts=2, dedup=dedup_key("x"), lost=5, rejoins=1)
    state = mark.state("trough-far")
    assert all(key.startswith(owner("trough-far") + ".") for key in state)
    values = {key.removeprefix(owner("trough-far") + "."): value for key, value in state.items()}
    assert DeviceMark.from_state(values) == mark
    assert 0 < dedup_key("3ac7e3c4-4401-4b8d-9386-a5c902f9202d") < 2**48
    assert dedup_key(None) == dedup_key("") == 0
