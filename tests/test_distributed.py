"""Multi-process runs: two processes on localhost give the one-process batch result; an
unreachable coordinator fails fast with a message."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import invsolve as inv

SCRIPT = Path(__file__).parent / "scripts" / "two_process_batch.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 10 s on two cores: two Python processes
def test_two_processes_on_localhost_equal_one_process():
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), address, str(i)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (0, 1)]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for i, o in enumerate(outs):
        # 4 devices over 2 processes, and every process holds the whole batch, equal to one-by-one
        assert o["process"] == i and o["devices"] == 4 and o["local"] == 2
        assert o["err"] <= 1e-12 and len(o["steps"]) == 7
    assert outs[0]["steps"] == outs[1]["steps"]


def test_an_unreachable_coordinator_times_out_with_a_message():
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"could not reach the coordinator at 127.0.0.1:\d+ within 1 s"):
        inv.distributed.initialize(f"127.0.0.1:{_free_port()}", num_processes=2, process_id=1, timeout_s=1.0)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ValueError, match=r"process_id must be in \[0, 2\)"):
        inv.distributed.initialize("127.0.0.1:1234", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="host:port"):
        inv.distributed.initialize("localhost", num_processes=2, process_id=1)
