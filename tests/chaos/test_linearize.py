"""The linearizability checker itself: it must accept every history a correct register can
produce, and reject the classic anomalies (stale reads, lost writes, values out of nowhere)."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from linearize import Op, check  # noqa: E402


def ok(ops, **kw):
    return check(ops, **kw)[0]


def test_sequential():
    assert ok([Op("w", "a", 0, 1), Op("r", "a", 2, 3), Op("w", "b", 4, 5), Op("r", "b", 6, 7)])
    assert ok([Op("r", None, 0, 1), Op("w", "a", 2, 3)])


def test_stale_read_after_a_completed_write():
    assert ok([Op("w", "a", 0, 1), Op("r", None, 2, 3)]) is False
    assert ok([Op("w", "a", 0, 1), Op("w", "b", 2, 3), Op("r", "a", 4, 5)]) is False


def test_concurrent_read_may_see_either_value():
    assert ok([Op("w", "a", 0, 5), Op("r", None, 1, 2)])
    assert ok([Op("w", "a", 0, 5), Op("r", "a", 1, 2)])


def test_reads_must_not_go_back_in_time():
    # a write concurrent with two reads: once a read saw it, a later read must see it too
    assert ok([Op("w", "a", 0, 10), Op("r", "a", 1, 2), Op("r", None, 3, 4)]) is False
    assert ok([Op("w", "a", 0, 10), Op("r", None, 1, 2), Op("r", "a", 3, 4)])


def test_value_never_written():
    res, why = check([Op("w", "a", 0, 1), Op("r", "zz", 2, 3)])
    assert res is False and "never written" in why


def test_failed_write_must_not_be_seen():
    assert ok([Op("w", "a", 0, 1, "fail"), Op("r", "a", 2, 3)]) is False


def test_unknown_write_may_or_may_not_happen():
    assert ok([Op("w", "a", 0, 1, "info"), Op("r", "a", 50, 51)])
    assert ok([Op("w", "a", 0, 1, "info"), Op("r", None, 50, 51)])
    # ... but it happens at most once, and not before it was invoked
    assert ok([Op("r", "a", 0, 1), Op("w", "a", 2, 3, "info")]) is False
    assert ok([Op("w", "a", 0, 1, "info"), Op("r", "a", 2, 3), Op("w", "b", 4, 5),
               Op("r", "a", 6, 7)]) is False


def test_unknown_reads_are_ignored():
    assert ok([Op("w", "a", 0, 1), Op("r", "zz", 2, 3, "info")])


def test_unique_values_required():
    try:
        check([Op("w", "a", 0, 1), Op("w", "a", 2, 3)])
    except ValueError:
        return
    raise AssertionError("duplicate written values were accepted")


def simulate(rng, n_ops, clients=5, p_unknown=0.05):
    """A correct register under concurrent clients: each operation takes effect at one instant
    between its invocation and its answer; some answers get lost (unknown outcome)."""
    ops = []
    t = [0.0] * clients
    events = []
    for i in range(n_ops):
        c = rng.randrange(clients)
        t0 = t[c] + rng.random()
        t1 = t0 + rng.random() * 3
        t[c] = t1
        at = rng.uniform(t0, t1)
        kind = rng.choice("wr")
        events.append((at, i, kind, t0, t1, c))
    state = None
    done = {}
    for at, i, kind, t0, t1, c in sorted(events):
        if kind == "w":
            state = f"v{i}"
            done[i] = Op("w", state, t0, t1)
        else:
            done[i] = Op("r", state, t0, t1)
    for i in range(n_ops):
        o = done[i]
        if rng.random() < p_unknown:
            if o.kind == "w":
                o.status = "info"
                o.t1 = o.t1 + 100  # the answer never came
            else:
                o.status = "info"
        ops.append(o)
    return ops


def test_random_correct_histories_pass():
    rng = random.Random(5)
    for _ in range(30):
        res, why = check(simulate(rng, 300))
        assert res is True, why


def test_random_histories_with_a_stale_read_fail():
    """Make one read return an older value where only the latest write's value is possible:
    the checker must notice, whatever the rest of the history."""
    rng = random.Random(6)
    planted = caught = 0
    for _ in range(40):
        ops = simulate(rng, 200, clients=3, p_unknown=0)
        writes = [o for o in ops if o.kind == "w"]
        for r in sorted((o for o in ops if o.kind == "r"), key=lambda o: o.t0):
            before = [w for w in writes if w.t1 < r.t0]
            if not before:
                continue
            last = max(before, key=lambda w: w.t1)
            # no other write overlaps [last.t0, r.t1]: the read must return last's value
            if any(w is not last and w.t1 > last.t0 and w.t0 < r.t1 for w in writes):
                continue
            older = [w for w in writes if w.t1 < last.t0]
            if not older or r.value != last.value:
                continue
            r.value = rng.choice(older).value
            planted += 1
            caught += check(ops)[0] is False
            break
    assert planted >= 10 and caught == planted
