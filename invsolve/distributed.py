"""Multi-process runs: the same script on several hosts (or processes on one host).

Call `initialize` first thing in every process (before any other JAX work); afterwards
``jax.devices()`` lists every process's devices, and `invsolve.solve_batch` shards its batch
over all of them and hands every process the whole result. For example, two processes on one
machine::

    python script.py 0 &  python script.py 1      # script.py:
    import sys, invsolve as inv
    inv.distributed.initialize("127.0.0.1:12355", num_processes=2, process_id=int(sys.argv[1]))
    sols = inv.solve_batch(problems, solver)

On clusters with SLURM or Open MPI, ``initialize()`` without arguments lets JAX read the
environment.
"""

from __future__ import annotations

import socket
import time

import jax

from ._batch import mesh  # noqa: F401  (the 1-D device mesh solve_batch shards over)


def _wait_for(address: str, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"initialize: coordinator_address must look like 'host:port', got {address!r}.")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=min(2.0, timeout_s)):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"initialize: could not reach the coordinator at {address} within {timeout_s:g} s "
                    f"({err.strerror or err}); start process 0 first, and check the host, the port and "
                    "any firewall between the machines.") from None
            time.sleep(0.2)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: float = 120.0, local_device_ids=None) -> None:
    """Join (or, as process 0, host) a multi-process JAX run.

    Args:
        coordinator_address: ``"host:port"`` of process 0 (None: from the cluster environment).
        num_processes, process_id: the run's size and this process's rank (0 hosts).
        timeout_s: give up (``TimeoutError`` with a message, no hang) when the coordinator
            cannot be reached, or the other processes do not join, within this many seconds.
        local_device_ids: restrict this process to some of its local devices.

    On CPUs, cross-process collectives use gloo.
    """
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"initialize: process_id must be in [0, {num_processes}), got {process_id}.")
    if coordinator_address is not None and process_id not in (None, 0):
        _wait_for(coordinator_address, timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   local_device_ids=local_device_ids, initialization_timeout=int(max(1, timeout_s)))
    except Exception as err:  # noqa: BLE001 - XLA raises a generic error on a timeout
        if "DEADLINE_EXCEEDED" in str(err) or "timed out" in str(err).lower():
            raise TimeoutError(f"initialize: the {num_processes} processes did not all join the coordinator at "
                               f"{coordinator_address} within {timeout_s:g} s; start every process with the same "
                               "address and num_processes.") from None
        raise

