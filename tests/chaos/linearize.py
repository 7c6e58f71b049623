"""A linearizability checker for single registers (Wing & Gong's search with Lowe's memoisation).

A history is a list of operations on one register, each with the times it was invoked and
answered (one process-wide monotonic clock), and an outcome:

  "ok"    the operation took effect and (for a read) returned `value`;
  "fail"  it certainly did not take effect (dropped before the check);
  "info"  unknown: a timeout, a reset connection, an ambiguous error. A write may or may not have
          taken effect, at any moment after its invocation; a read with an unknown answer
          constrains nothing and is dropped.

The history is linearizable when the operations that took effect can be put in one order that
respects real time (an operation answered before another was invoked comes first) and in which
every read returns the value of the latest write before it (or the initial value).

Written values must be unique per register; that lets an unknown write whose value no read ever
returned be dropped without changing the verdict: in any valid order it can be moved to right
before the next write (or the end), where it changes nothing observable.
"""

INF = float("inf")


class Op:
    __slots__ = ("kind", "value", "t0", "t1", "status", "ref")

    def __init__(self, kind, value, t0, t1, status="ok", ref=None):
        assert kind in ("w", "r")
        self.kind, self.value, self.t0, self.t1 = kind, value, t0, t1
        self.status, self.ref = status, ref

    def __repr__(self):
        return (f"Op({self.kind},{self.value!r},{self.t0:.4f},{self.t1:.4f},{self.status},"
                f"{self.ref})")


class _Entry:
    __slots__ = ("op", "idx", "is_call", "match", "prev", "next", "time")

    def __init__(self, op, idx, is_call, time):
        self.op, self.idx, self.is_call, self.time = op, idx, is_call, time
        self.match = self.prev = self.next = None


def prepare(ops, initial=None):
    """Drop what cannot matter; return (kept ops, list of problems found without search)."""
    written = {}
    problems = []
    for o in ops:
        if o.kind == "w" and o.status != "fail":
            if o.value in written:
                raise ValueError(f"written value {o.value!r} is not unique")
            written[o.value] = o
    read_values = {o.value for o in ops if o.kind == "r" and o.status == "ok"}
    kept = []
    for o in ops:
        if o.status == "fail":
            continue
        if o.kind == "r":
            if o.status != "ok":
                continue
            if o.value != initial and o.value not in written:
                problems.append(f"read {o.ref} returned {o.value!r}, a value never written "
                                "(or only by writes that certainly failed)")
            kept.append(o)
        else:
            if o.status == "info" and o.value not in read_values:
                continue
            kept.append(o)
    return kept, problems


def check(ops, initial=None, max_states=2_000_000):
    """Returns (True, None) when linearizable, (False, explanation) when not, and
    (None, why) when the search gave up (too many states)."""
    ops, problems = prepare(ops, initial)
    if problems:
        return False, problems[0]
    if not ops:
        return True, None
    events = []
    for i, o in enumerate(ops):
        t1 = o.t1 if o.status == "ok" else INF
        if t1 < o.t0:
            raise ValueError(f"operation answered before it was invoked: {o}")
        call = _Entry(o, i, True, o.t0)
        ret = _Entry(o, i, False, t1)
        call.match = ret
        events.append(call)
        events.append(ret)
    # Calls sort before returns at equal times: equal stamps count as concurrent, which never
    # reports an anomaly that is not there.
    events.sort(key=lambda e: (e.time, 0 if e.is_call else 1))
    head = _Entry(None, -1, False, -INF)
    prev = head
    for e in events:
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    state = initial
    linearized = 0
    cache = set()
    stack = []
    entry = head.next
    longest = []
    explored = 0
    while head.next is not None:
        if entry is None:  # cannot happen: a return always follows its call
            return None, "internal error"
        if entry.is_call:
            o = entry.op
            if o.kind == "w":
                ok, new_state = True, o.value
            else:
                ok, new_state = o.value == state, state
            if ok:
                lin = linearized | (1 << entry.idx)
                key = (lin, new_state)
                if key not in cache:
                    cache.add(key)
                    explored += 1
                    if explored > max_states:
                        return None, f"gave up after {max_states} states"
                    stack.append((entry, state))
                    if len(stack) > len(longest):
                        longest = [s[0].op for s in stack]
                    state, linearized = new_state, lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return False, explain(ops, longest)
            e, state = stack.pop()
            linearized &= ~(1 << e.idx)
            unlift(e)
            entry = e.next
    return True, None


def explain(ops, longest):
    done = {id(o) for o in longest}
    rest = sorted((o for o in ops if id(o) not in done), key=lambda o: o.t0)
    last = longest[-1] if longest else None
    val = None
    for o in longest:
        if o.kind == "w":
            val = o.value
    stuck = rest[:3]
    return (f"no linearization: the longest valid prefix has {len(longest)} of {len(ops)} "
            f"operations and ends with {last} (register = {val!r}); it cannot be extended by "
            f"any of the pending operations, the earliest being {stuck}")
