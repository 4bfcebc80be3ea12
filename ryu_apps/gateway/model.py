"""The running model bundle, kept across bad files.

:class:`ModelHolder` loads a bundle directory and reloads it when its files change
(polled) or on demand. A corrupt, incomplete or vanished bundle is rejected with
the loader's message (it names the file) and the **last good model keeps running**
(its LiteRT interpreter lives in memory, so deleting ``model.tflite`` under a
running gateway changes nothing until a good bundle is back). Without any good
model (a bad bundle at start-up) ``current`` is None and every session is
``unknown`` (fail-open: the ``unknown``/default policy).

The device model (``egw_device_model``) is held by one too, with
:func:`classifier.evaluate_devices.load_device_bundle` as its ``loader`` (``name``
"device model", ``empty``: what happens without one).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from policies.watch import FileWatch

log = logging.getLogger("egw.model")

WATCHED = ("labels.json", "card.json", "preprocess.json", "model.tflite", "model.int8.tflite")


class ModelHolder:
    def __init__(self, path: str | os.PathLike, loader: Callable | None = None,
                 prefer_int8: bool = True, name: str = "model",
                 empty: str = "every session is 'unknown'"):
        self.path = Path(path)
        self.name, self.empty = name, empty
        self.prefer_int8 = prefer_int8
        self._loader = loader
        self.current = None
        self.last_error: str | None = None
        self.generation = 0            # bumped on every model change
        self._watch = FileWatch([self.path / name for name in WATCHED])

    def _load(self):
        if self._loader is not None:
            return self._loader(self.path, self.prefer_int8)
        from classifier.bundle import load_bundle

        return load_bundle(self.path, prefer_int8=self.prefer_int8)

    def changed_on_disk(self) -> bool:
        return self._watch.changed()

    def load(self) -> tuple[bool, str]:
        """(Re)load the bundle. A good one replaces the running model; a bad one is
        rejected (``last_error``, the running model kept). Returns (ok, message)."""
        self._watch.mark()
        try:
            bundle = self._load()
        except Exception as exc:  # BundleError names the file; anything else too
            msg = str(exc) if getattr(exc, "user_facing", False) else f"{self.path}: {exc!r}"
            self.last_error = msg
            kept = (f"keeping the running {self.name} {self.current.model_file}"
                    if self.current is not None else f"no {self.name}: {self.empty}")
            return False, f"{self.name} bundle rejected ({kept}): {msg}"
        self.current = bundle
        self.last_error = None
        self.generation += 1
        return True, (f"{self.name} {bundle.path} ({bundle.model_file.name}): "
                      f"{len(bundle.labels)} classes")

    def reload_if_changed(self) -> tuple[bool, str] | None:
        return self.load() if self.changed_on_disk() else None

    # what the engine calls -------------------------------------------------------
    @property
    def preprocess(self):
        return self.current.preprocess if self.current is not None else None

    @property
    def labels(self) -> list[str]:
        return list(self.current.labels) if self.current is not None else []

    def classify(self, batch):
        b = self.current
        if b is None:
            raise RuntimeError("no model loaded")
        return b.classify_scored(batch)
