import os

# pytest-xdist runs two workers on two cores: one XLA thread each, or their thread pools
# oversubscribe the cores and compute-heavy tests run several times slower. Set before jax
# is imported; notebook kernels started by the tests inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
# Persistent compilation cache: repeated test runs skip most XLA compiles.
_cache = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax")
jax.config.update("jax_compilation_cache_dir", os.path.abspath(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def key():
    return jax.random.key(0)
