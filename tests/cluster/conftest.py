import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from cmcluster import Cluster  # noqa: E402


@pytest.fixture
def make_cluster(request):
    """Factory: make_cluster(nodes=3, ...) -> a started Cluster, shut down after the test.
    Logs of failed tests are kept under the test's temporary directory."""
    made = []

    def make(start=True, **kw):
        c = Cluster(**kw)
        made.append(c)
        if start:
            c.start_all()
        return c

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    reports = []
    for c in made:
        c.shutdown()
        reports += c.sanitizer_reports()
        failed = failed or bool(reports)
        if failed:
            print(f"\nlogs of the failed test are in {c.dir}")
            for i in c.logs:
                print(f"--- node {i} ---\n{c.log_tail(i, 40)}")
        else:
            shutil.rmtree(c.dir, ignore_errors=True)
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


@pytest.fixture(scope="module")
def cluster3():
    """One 3-node cluster shared by the tests of a module that do not break it."""
    c = Cluster(nodes=3)
    c.start_all()
    yield c
    c.shutdown()
    reports = c.sanitizer_reports()
    if not reports:
        shutil.rmtree(c.dir, ignore_errors=True)
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
