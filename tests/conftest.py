import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# Persistent compilation cache: repeated test runs skip most XLA compiles.
_cache = os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax")
jax.config.update("jax_compilation_cache_dir", os.path.abspath(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def key():
    return jax.random.key(0)
