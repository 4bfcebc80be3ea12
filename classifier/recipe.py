"""The commands that made a bundle, and the same commands pointed at other captures.

A bundle's ``card.json`` records the ``egw dataset build`` argv (``data.manifest.argv``)
and the ``egw train`` command (``command``); a distilled model also records its
teacher's (``training.distillation.teacher_command``). ``recipe(card)`` returns them in
order; ``retarget`` rewrites their paths so that they build and train the same family
on any capture folder (``egw recipe BUNDLE --input DIR --workdir DIR [--run]``).
"""
from __future__ import annotations

import shlex
from pathlib import Path

from classifier.train import OOF_TEACHER  # a --teacher that is trained inside, not a path

DROP_TRAIN = {"--note"}  # free text about the original data


class RecipeError(Exception):
    user_facing = True


def _argv(cmd) -> list[str]:
    if cmd is None:
        return []
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    return argv[1:] if argv and Path(argv[0]).name == "egw" else argv


def recipe(card: dict, where: str = "card.json") -> list[list[str]]:
    """``[build argv, (teacher train argv,) train argv]`` without the leading ``egw``."""
    build = _argv(((card.get("data") or {}).get("manifest") or {}).get("argv"))
    train = _argv(card.get("command"))
    if build[:2] != ["dataset", "build"]:
        raise RecipeError(f"{where}: no `egw dataset build` argv in data.manifest.argv")
    if train[:1] != ["train"]:
        raise RecipeError(f"{where}: no `egw train` command in 'command'")
    teacher = _argv(((card.get("training") or {}).get("distillation") or {}).get("teacher_command"))
    return [build] + ([teacher] if teacher else []) + [train]


def set_option(argv: list[str], opt: str, value: str | None) -> list[str]:
    """``argv`` with option ``opt`` set to ``value`` (added if absent, removed if None)."""
    out, i, done = [], 0, False
    while i < len(argv):
        a = argv[i]
        if a == opt or a.startswith(opt + "="):
            skip = 1 if "=" in a else 2
            if value is not None and not done:
                out += [opt, value]
                done = True
            i += skip
            continue
        out.append(a)
        i += 1
    if value is not None and not done:
        out += [opt, value]
    return out


def retarget(commands: list[list[str]], input_dir: str, workdir: str,
             taxonomy: str | None = None) -> list[list[str]]:
    """The recipe with its paths pointed at ``input_dir`` (captures, one folder per class)
    and ``workdir`` (dataset ``data.npz``, ``teacher/`` and ``model/`` bundles)."""
    w = Path(workdir)
    data, teacher_dir, model_dir = str(w / "data.npz"), str(w / "teacher"), str(w / "model")
    out = []
    for argv in commands:
        if argv[:2] == ["dataset", "build"]:
            a = set_option(argv, "--input", input_dir)
            a = set_option(a, "--taxonomy", taxonomy)
            a = set_option(a, "--out", data)
        else:
            is_teacher = argv is not commands[-1]
            a = set_option(argv, "--data", data)
            a = set_option(a, "--out", teacher_dir if is_teacher else model_dir)
            if "--teacher" in a and a[a.index("--teacher") + 1] != OOF_TEACHER:
                a = set_option(a, "--teacher", teacher_dir)   # a bundle the recipe trains first
            for opt in DROP_TRAIN:
                a = set_option(a, opt, None)
        out.append(a)
    return out


def format_commands(commands: list[list[str]]) -> str:
    return "\n".join("egw " + " ".join(shlex.quote(x) for x in argv) for argv in commands)
