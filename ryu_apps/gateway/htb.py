"""The WAN HTB on the uplink interface: ``tc`` runs of :mod:`policies.wan`'s commands.

Not pure (it runs ``tc``), but no Ryu: the adapter only decides when. Set up when a
switch's WAN port is found and again when the policy's WAN classes change; removed
at exit.
"""
from __future__ import annotations

import logging
import os
import subprocess

from policies.wan import tc_commands, tc_teardown


class WanHtb:
    def __init__(self, metrics=None, logger: logging.Logger | None = None,
                 run=subprocess.run):
        self.metrics = metrics
        self.log = logger or logging.getLogger("egw.htb")
        self.run = run
        self.dev: str | None = None          # the interface it is set up on

    def setup(self, dev: str | None, wan) -> bool:
        """(Re)build the HTB classes of ``wan`` (the policy's ``wan`` section) on ``dev``."""
        if not dev or not os.path.exists(f"/sys/class/net/{dev}"):
            self.log.info("WAN port %s is not a local interface: no HTB set up", dev)
            return False
        for argv in tc_teardown(dev):
            self.run(argv, capture_output=True)
        for argv in tc_commands(wan, dev):
            r = self.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                if self.metrics is not None:
                    self.metrics.errors.labels("tc").inc()
                self.log.error("%s failed: %s", " ".join(argv), r.stderr.strip())
                return False
        self.dev = dev
        self.log.info("WAN HTB set up on %s", dev)
        return True

    def teardown(self) -> None:
        dev, self.dev = self.dev, None
        if not dev:
            return
        for argv in tc_teardown(dev):
            self.run(argv, capture_output=True)
        self.log.info("WAN HTB removed from %s", dev)
