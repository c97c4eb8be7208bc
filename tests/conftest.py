"""Test-session settings and hooks, made before any test module imports JAX."""

import inspect
import os
import re

from binaries import _CACHE as binaries_cache
from binaries import with_smoke_flags

# The tests run tiny problems, so most of their time is XLA compilation: in-process tests compile at the same
# cheapest backend optimisation level as the binaries under test (tests/binaries.py). Results may differ from
# the default level in the last bits; no test compares against figures made outside the test session.
os.environ["XLA_FLAGS"] = with_smoke_flags(os.environ.get("XLA_FLAGS", ""))
# In-process tests share the binaries' persistent compilation cache (tests/binaries.py): a program compiled by one
# worker or binary is read back by the others.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", binaries_cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# Tests that start processes (experiment binaries, a second JAX with two devices) take 5 to 150 s each, the rest
# mostly under 5 s. Handing them out first lets the two workers of `pytest -n auto` finish together instead of
# one running a long end-to-end test alone at the end.
# The helpers of tests/binaries.py (bare or as binaries.x; run_on_host_devices starts a JAX of several devices)
# and subprocess.run; not other modules' run().
_STARTS_A_PROCESS = re.compile(
    r"(?<![\w.])(run|start|kill_at_first_checkpoint|run_on_host_devices)\(|\b(binaries|subprocess)\."
    r"(run|start|run_on_host_devices)\("
)


def _starts_a_process(item) -> bool:
    fn = getattr(item, "function", None)
    try:
        return bool(fn and _STARTS_A_PROCESS.search(inspect.getsource(fn)))
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: not _starts_a_process(item))  # stable: same order on every worker
