"""The short chaos slice of `make test`: a 3-node cluster under the concurrent workload while the
nemesis runs the fixed CI schedule once (in the order the seed gives), then every check of a
campaign. Longer and wider campaigns: `make chaos` (see tests/chaos/README.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import chaos  # noqa: E402

SEED = int(os.environ.get("CHAOS_SEED", "20240611"))


def test_chaos_slice(tmp_path):
    res = chaos.run_campaign(seed=SEED, duration=600, nodes=3, schedule=chaos.CI_SCHEDULE,
                             workdir=str(tmp_path / "run"), quiet=True, scale=0.5,
                             report=str(tmp_path / "report.md"))
    summary = (f"seed {SEED}: {res['n_ops']} operations, faults {res['faults']}, "
               f"{res['elapsed']} s")
    print(summary)
    problems = "\n".join(f"[{a['kind']}] {a['msg']}" for a in res["anomalies"])
    assert not res["anomalies"], f"{summary}\nlogs in {res['workdir']}\n{problems}"
    assert sum(res["faults"].values()) == len(chaos.CI_SCHEDULE)
    # the workload did make progress and the checks had something to check
    assert res["n_ops"] > 1000
    assert all(v["linearizable"] for v in res["registers"].values())
    assert res["ids"]["bid_ranges"] > 50
    assert min(res["acked"].values()) > 5
