"""Ray for the heavy offline work (``--ray [ADDRESS]``; the optional ``cluster`` extra).

The one place that imports Ray, and only when a ``--ray`` path runs: the base install
and the gateway never do. :class:`RayPool` connects to a cluster (``ADDRESS``: the
``host:port`` printed by ``ray start --head``, or ``auto``) or, with ``local``, starts
a Ray instance on this machine; it runs plain module-level functions as Ray tasks
(each task one CPU, retried when its worker or node is lost) and yields their results
to the driver, which does everything else (progress, ordering, writing files).
"""
from __future__ import annotations

import logging

#: ``--ray`` without an address: a Ray instance on this machine, for this run only
RAY_LOCAL = "local"

#: how many times Ray re-runs a task whose worker process or node died
TASK_RETRIES = 3


class ClusterError(RuntimeError):
    user_facing = True


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'sdn-egw[cluster]' (or run "
                           "scripts/bootstrap.sh with EGW_EXTRAS=cluster)") from None
    return ray


class RayPool:
    """Ray tasks from this driver: ``imap_unordered`` (results as they finish) and
    ``map`` (results in order). Connects on entry; disconnects on :meth:`close` only if
    it was this pool that connected (a driver already connected keeps its connection)."""

    def __init__(self, address: str | None = RAY_LOCAL, retries: int = TASK_RETRIES):
        self.ray = import_ray()
        self.retries = retries
        self._owner = not self.ray.is_initialized()
        if self._owner:
            kw = dict(logging_level=logging.WARNING, log_to_driver=False)
            if address in (None, RAY_LOCAL):
                kw["include_dashboard"] = False
            else:
                kw["address"] = address
            try:
                self.ray.init(**kw)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ClusterError(f"--ray {address}: cannot connect to the Ray cluster: "
                                   f"{str(exc).splitlines()[0]}") from None
        self._tasks: dict = {}

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))

    def put(self, value):
        """``value`` in the object store once (pass the reference to many tasks)."""
        return self.ray.put(value)

    def _task(self, fn):
        if fn not in self._tasks:
            self._tasks[fn] = self.ray.remote(num_cpus=1, max_retries=self.retries)(fn)
        return self._tasks[fn]

    def imap_unordered(self, fn, items, in_flight: int | None = None):
        """``fn(item)`` for each item as a Ray task; results as they finish. At most
        ``in_flight`` tasks are submitted at a time (default: twice the cluster's CPUs),
        so a corpus of many files does not queue all of them at once."""
        task = self._task(fn)
        limit = in_flight or 2 * self.cpus()
        it = iter(items)
        pending = []
        for item in it:
            pending.append(task.remote(item))
            if len(pending) >= limit:
                break
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for item in it:
                pending.append(task.remote(item))
                break
            yield self.ray.get(done[0])

    def map(self, fn, *arg_lists) -> list:
        """``[fn(*args) for args in zip(*arg_lists)]`` as Ray tasks, in order."""
        task = self._task(fn)
        return self.ray.get([task.remote(*args) for args in zip(*arg_lists)])

    def close(self) -> None:
        if self._owner and self.ray.is_initialized():
            self.ray.shutdown()
        self._owner = False

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
