import os

# pytest-xdist runs two workers on two cores: one XLA thread each, or their thread pools
# oversubscribe the cores and compute-heavy tests run several times slower. Set before jax
# is imported; notebook kernels started by the tests inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# the command line's own compilation cache (~/.cache/invsolve) stays off: tests use the one below
os.environ.setdefault("INVSOLVE_NO_CACHE", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

from helpers import clear_compiled  # noqa: E402

jax.config.update("jax_enable_x64", True)
# Persistent compilation cache: repeated test runs skip most XLA compiles.
_cache = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax")
jax.config.update("jax_compilation_cache_dir", os.path.abspath(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def key():
    return jax.random.key(0)


# --- how many tests the fast tier left out ----------------------------------------------
# Under pytest-xdist the workers collect and deselect; each reports its count to the
# controller, which prints one line at the end of the run.
_deselected = {"n": 0}


_EXTRA_SLOW = {line.strip() for line in open(os.path.join(os.path.dirname(__file__), "slow_tier_extra.txt"))
               if line.strip() and not line.startswith("#")}


for _id in _EXTRA_SLOW:  # a renamed or removed test must not leave a stale line behind
    _path, _func = _id.split("::")[0], _id.split("::")[1].split("[")[0]
    _src = os.path.join(os.path.dirname(__file__), "..", _path)
    if not os.path.exists(_src) or f"def {_func}(" not in open(_src).read():
        raise RuntimeError(f"tests/slow_tier_extra.txt lists {_id!r}, but {_path} has no test {_func}")


# The slow tier's longest tests (2-4 minutes each) first: xdist's worksteal then balances the
# short ones behind them, and no worker waits alone on a long test at the end.
_LONG_FIRST = ("tests/test_readme.py::test_readme_slow_example_runs", "tests/test_notebooks.py::test_notebook_runs",
               "tests/test_experiments.py::test_quick_run_meets_its_criteria", "tests/test_trust.py::",
               "tests/test_cli.py::")


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config, items):
    """Heavy tests listed in ``slow_tier_extra.txt`` run in the slow tier, whose longest
    tests go first (`_LONG_FIRST`)."""
    for item in items:
        if item.nodeid in _EXTRA_SLOW:
            item.add_marker(pytest.mark.slow)
    if config.getoption("markexpr") == "slow":
        items.sort(key=lambda it: next((i for i, p in enumerate(_LONG_FIRST) if it.nodeid.startswith(p)),
                                       len(_LONG_FIRST)))


def pytest_deselected(items):
    _deselected["n"] += sum(1 for item in items if item.get_closest_marker("slow"))


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker
        session.config.workeroutput["deselected"] = _deselected["n"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # xdist controller: every worker collects the same tests
    _deselected["n"] = max(_deselected["n"], getattr(node, "workeroutput", {}).get("deselected", 0))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    expr = config.getoption("markexpr")
    if _deselected["n"] and expr == "not slow":
        terminalreporter.write_line(f"fast tier: {_deselected['n']} slow tests deselected; `pytest -m slow` runs them "
                                    "(CI runs both tiers: .ci/run)")



# Every compiled XLA:CPU kernel keeps its own memory mappings until its executable is freed,
# and a long-lived xdist worker reaches the per-process limit (vm.max_map_count, 65530)
# within ~15 min of the slow tier; mmap then fails and the worker dies with a fatal signal.
# Dropping JAX's in-memory compilation caches frees them: after every slow test (each
# compiles large programs of its own) and after every module of fast tests (which share
# small programs within a module). The persistent cache above makes a recompile a disk read.
@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_per_module():
    yield
    clear_compiled()


@pytest.fixture(autouse=True)
def _free_compiled_programs_per_slow_test(request):
    yield
    if request.node.get_closest_marker("slow"):
        clear_compiled()
