"""Loading policy files with precise errors (file, line, key).

YAML is composed into a node tree first (PyYAML keeps each node's position), then
constructed and validated with pydantic; every validation error's location is
walked back through the node tree to the line of the offending key.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import PolicyError, PolicyIssue
from .limits import PolicyLimits
from .schema import (RESERVED_CLASS_NAMES, UNKNOWN_DEVICE, Policy, Wan, _wan_issues,
                     semantic_issues)
from .yamlload import LimitExceeded, Loader

log = logging.getLogger(__name__)


def _compose(text: str, file: str, limits: PolicyLimits) -> tuple[yaml.Node | None, Any]:
    try:
        loader = Loader(text)   # the reader rejects control characters (NUL ...) here
    except yaml.YAMLError as e:
        raise _file_error(file, f"invalid YAML: {e}") from None
    loader.limits = limits
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        return node, data
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(x) for x in (e.context, e.problem) if x)
        if not isinstance(e, LimitExceeded):
            problem = f"invalid YAML: {problem}"
        raise _file_error(file, problem, mark) from None
    except yaml.YAMLError as e:
        raise _file_error(file, f"invalid YAML: {e}") from None
    finally:
        loader.dispose()


def _file_error(file: str, problem: str, mark: Any = None) -> PolicyError:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    problem = " ".join(problem.split())      # one line (PyYAML's messages have several)
    return PolicyError(issues=[PolicyIssue(file, line, col, "", problem)], file=file)


def _duplicate_keys(root: yaml.Node | None, file: str) -> list[PolicyIssue]:
    """Duplicate keys of every mapping, each node visited once (a node that aliases
    share is one node: walking it again per alias would take exponential time)."""
    out: list[PolicyIssue] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[Any, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else f"<{k.id}>"
                if key in seen:
                    out.append(PolicyIssue(file, k.start_mark.line + 1, k.start_mark.column + 1,
                                           _dotted(path + (key,)),
                                           f"duplicate key {key!r} (first at line {seen[key]})"))
                else:
                    seen[key] = k.start_mark.line + 1
                stack.append((v, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, path + (i,)) for i, v in enumerate(node.value))
    return out


def _dotted(path: tuple | list) -> str:
    s = ""
    for seg in path:
        if isinstance(seg, int):
            s += f"[{seg}]"
        else:
            s += ("." if s else "") + str(seg)
    return s


def _locate(root: yaml.Node | None, loc: tuple, key_itself: bool = False
            ) -> tuple[tuple, int | None, int | None]:
    """Walk ``loc`` through the node tree: (matched path, line, column).

    Segments that are not in the tree (pydantic's union tags, a missing key) are
    skipped for the position but kept for the path when they are the last one.
    ``key_itself`` points at the key rather than its value (unknown keys)."""
    node = root
    path: list = []
    mark = root.start_mark if root is not None else None
    for n, seg in enumerate(loc):
        last = n == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(seg):
                    path.append(str(seg))
                    mark = k.start_mark if (key_itself and last) else (
                        k.start_mark if isinstance(v, (yaml.MappingNode, yaml.SequenceNode))
                        else v.start_mark)
                    node = v
                    break
            else:
                if last and isinstance(seg, str) and not _is_tag(seg):
                    path.append(seg)
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) \
                and 0 <= seg < len(node.value):
            path.append(seg)
            node = node.value[seg]
            mark = node.start_mark
        elif last and isinstance(seg, (str, int)) and not _is_tag(seg):
            path.append(seg)
    if mark is None:
        return tuple(path), 1, 1
    return tuple(path), mark.line + 1, mark.column + 1


def _is_tag(seg: Any) -> bool:
    return isinstance(seg, str) and ("[" in seg or seg in (
        "int", "str", "list", "dict", "tuple", "none", "literal", "constrained-int"))


def _unwrap(tp: Any) -> list[Any]:
    """Types reachable one container level below ``tp`` (Optional, Annotated,
    tuple, dict values, list items)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [t for a in typing.get_args(tp) for t in _unwrap(a)]
    return [tp]


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model whose keys are allowed at ``loc`` (for 'allowed: ...')."""
    current: list[Any] = [Policy]
    for seg in loc:
        nxt: list[Any] = []
        for tp in current:
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(seg, str) and seg in tp.model_fields:
                    nxt += _unwrap(tp.model_fields[seg].annotation)
            else:
                origin = typing.get_origin(tp)
                if origin in (tuple, list, dict):
                    args = typing.get_args(tp)
                    if args:
                        nxt += _unwrap(args[-1] if origin is dict else args[0])
        current = nxt or current
    for tp in current:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
    return None


def _message(err: dict) -> str:
    typ, msg = err["type"], err["msg"]
    loc = err["loc"]
    if typ == "extra_forbidden":
        model = _model_at(tuple(loc[:-1]))
        allowed = f" (allowed: {', '.join(model.model_fields)})" if model else ""
        return f"unknown key {loc[-1]!r}{allowed}"
    if typ == "missing":
        return f"missing required key {loc[-1]!r}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith("Input should be "):
        msg = "must be " + msg[len("Input should be "):]
    msg = re.sub(r" or instance of \w+", "", msg).replace("valid tuple", "valid list")
    if loc and loc[-1] == "[key]":
        return f"keys here must be text, got {err.get('input')!r} (quote it)"
    if typ in ("dscp", "policy", "null", "value_error"):
        return msg
    if "input" in err and err["input"] is None:
        msg += ", got nothing (null)"
    elif "input" in err and not isinstance(err["input"], (dict, list, tuple)):
        msg += f", got {err['input']!r}"
    return msg


def _labels_issues(data: Any, root: yaml.Node | None, file: str, labels: list[str],
                   allow_unlisted: bool) -> list[PolicyIssue]:
    out: list[PolicyIssue] = []
    if not isinstance(data, dict):
        return out
    known = list(labels)
    model_classes = [c for c in labels if c not in RESERVED_CLASS_NAMES]

    def unknown(path: tuple, name: str) -> None:
        hint = difflib.get_close_matches(name, known, n=1)
        more = f"; did you mean {hint[0]!r}?" if hint else ""
        _, line, col = _locate(root, path, key_itself=True)
        out.append(PolicyIssue(file, line, col, _dotted(path),
                               f"unknown class name {name!r}: the model's classes are "
                               f"{', '.join(known)}{more}"))

    classes = data.get("classes")
    classes = classes if isinstance(classes, dict) else {}
    for name in classes:
        if str(name) not in known and str(name) not in RESERVED_CLASS_NAMES:
            unknown(("classes", name), str(name))
    devices = data.get("devices")
    if isinstance(devices, list):
        for i, dev in enumerate(devices):
            dcls = dev.get("classes") if isinstance(dev, dict) else None
            if isinstance(dcls, dict):
                for name in dcls:
                    if str(name) not in known and str(name) not in RESERVED_CLASS_NAMES:
                        unknown(("devices", i, "classes", name), str(name))
    missing = [c for c in model_classes if c not in classes]
    if missing:
        path = ("classes",) if "classes" in data else ()
        _, line, col = _locate(root, path, key_itself=True)
        out.append(PolicyIssue(
            file, line, col, "classes",
            f"the model's class{'es' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} ha{'ve' if len(missing) > 1 else 's'} "
            "no entry here (their sessions would get `default`); add "
            f"{'entries' if len(missing) > 1 else 'an entry'} to `classes`",
            "warning" if allow_unlisted else "error"))
    return out


def _device_type_issues(data: Any, root: yaml.Node | None, file: str,
                        names: list[str]) -> list[PolicyIssue]:
    """``device_types`` keys that are neither a device model's type or kind nor
    ``unknown_device``."""
    out: list[PolicyIssue] = []
    dt = data.get("device_types") if isinstance(data, dict) else None
    known = sorted(set(names)) + [UNKNOWN_DEVICE]
    for name in (dt if isinstance(dt, dict) else {}):
        if str(name) not in known:
            hint = difflib.get_close_matches(str(name), known, n=1)
            _, line, col = _locate(root, ("device_types", name), key_itself=True)
            out.append(PolicyIssue(file, line, col, _dotted(("device_types", name)),
                                   f"unknown device type {str(name)!r}: the device model's "
                                   f"types and kinds are {', '.join(known)}"
                                   + (f"; did you mean {hint[0]!r}?" if hint else "")))
    return out


def check_policy_text(text: str, file: str = "<policy>", labels: list[str] | None = None,
                      allow_unlisted: bool = False, limits: PolicyLimits | None = None,
                      device_names: list[str] | None = None
                      ) -> tuple[Policy | None, list[PolicyIssue]]:
    """Parse and validate policy YAML: ``(policy or None, issues sorted by line)``.

    ``labels`` (a model's class names) adds: unknown class names and model classes
    with no entry (an error unless ``allow_unlisted``, then a warning).  ``limits``
    (default: :meth:`PolicyLimits.from_env`) bound size, nesting and aliases.  Any
    failure the text causes is a :class:`PolicyError` naming the file.
    ``device_names`` (a device model's types and kinds, :func:`load_device_names`) adds:
    unknown ``device_types`` keys."""
    limits = limits or PolicyLimits.from_env()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise _too_large(file, f"{size} bytes", limits)
    try:
        return _check_text(text, file, labels, allow_unlisted, limits, device_names)
    except PolicyError:
        raise
    except RecursionError:
        raise _file_error(file, "nested too deeply to parse") from None
    except MemoryError:
        raise _file_error(file, "too large to parse (out of memory)") from None
    except Exception as e:     # a parser or validator bug must not escape as a crash
        log.debug("policy %s: unexpected %s", file, type(e).__name__, exc_info=True)
        raise _file_error(file, f"cannot parse ({type(e).__name__}: {str(e)[:200]})") from None


def _too_large(file: str, size: str, limits: PolicyLimits) -> PolicyError:
    return PolicyError(f"{file}: {size}, more than the {limits.max_bytes}-byte limit for a "
                       "policy file (EGW_POLICY_MAX_BYTES)", file=file)


def _check_text(text: str, file: str, labels: list[str] | None, allow_unlisted: bool,
                limits: PolicyLimits, device_names: list[str] | None = None
                ) -> tuple[Policy | None, list[PolicyIssue]]:
    root, data = _compose(text, file, limits)   # raises PolicyError on YAML syntax errors
    issues = _duplicate_keys(root, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise PolicyError(issues=[PolicyIssue(
            file, line, 1, "", f"a policy must be a YAML mapping, not a {type(data).__name__}")],
            file=file)
    if labels is not None:
        issues += _labels_issues(data, root, file, labels, allow_unlisted)
    if device_names is not None:
        issues += _device_type_issues(data, root, file, device_names)
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data, context={"defer_semantic": True})
    except ValidationError as e:
        wan_ok = not any(err["loc"][:1] == ("wan",) for err in e.errors())
        if wan_ok and isinstance(data.get("wan"), dict):
            # Report the WAN section's cross-field problems too.
            try:
                wan = Wan.model_validate(data["wan"], context={"defer_semantic": True})
            except ValidationError:
                pass
            else:
                for path, msg in _wan_issues(wan):
                    p, line, col = _locate(root, ("wan",) + path)
                    issues.append(PolicyIssue(file, line, col, _dotted(("wan",) + path), msg))
        for err in e.errors():
            loc = tuple(err["loc"]) + tuple(err.get("ctx", {}).get("subpath", ()))
            err = {**err, "loc": loc}
            path, line, col = _locate(root, loc, key_itself=err["type"] == "extra_forbidden")
            if err["type"] == "missing" and path and path[-1] == loc[-1]:
                # point at the mapping that lacks the key
                _, line, col = _locate(root, loc[:-1], key_itself=True)
            issues.append(PolicyIssue(file, line, col, _dotted(path), _message(err)))
    if policy is not None:
        for path, msg, severity in semantic_issues(policy):
            p, line, col = _locate(root, path)
            issues.append(PolicyIssue(file, line, col, _dotted(p if len(p) >= len(path)
                                                                 else path), msg, severity))
    issues.sort(key=lambda i: (i.line or 0, i.column or 0))
    if any(i.severity == "error" for i in issues):
        policy = None
    return policy, issues


def check_policy_file(path: str | os.PathLike, labels: list[str] | None = None,
                      allow_unlisted: bool = False, limits: PolicyLimits | None = None,
                      device_names: list[str] | None = None
                      ) -> tuple[Policy | None, list[PolicyIssue]]:
    """:func:`check_policy_text` on a file (raises :class:`PolicyError` if unreadable
    or larger than ``limits.max_bytes``: no more than that is read)."""
    file = str(path)
    limits = limits or PolicyLimits.from_env()
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise _too_large(file, "larger", limits)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PolicyError(f"{file}: cannot read policy: {reason}", file=file) from None
    return check_policy_text(text, file, labels, allow_unlisted, limits, device_names)


def load_policy(path: str | os.PathLike, labels: list[str] | None = None,
                allow_unlisted: bool = True, limits: PolicyLimits | None = None) -> Policy:
    """Load and validate a policy file.  Raises :class:`PolicyError` (``user_facing``)
    whose message names file, line and key of every error; warnings are logged."""
    return accept_checked(*check_policy_file(path, labels, allow_unlisted, limits), str(path))


def accept_checked(policy: Policy | None, issues: list[PolicyIssue], file: str) -> Policy:
    """The result of a check as :func:`load_policy` gives it: the policy (its warnings
    logged), or :class:`PolicyError` naming every error."""
    if policy is None:
        raise PolicyError(issues=issues, file=file)
    for issue in issues:
        log.warning("%s", issue)
    return policy


def parse_policy(text: str, file: str = "<policy>", limits: PolicyLimits | None = None) -> Policy:
    """Like :func:`load_policy` for YAML text (tests, REST uploads)."""
    policy, issues = check_policy_text(text, file, limits=limits)
    if policy is None:
        raise PolicyError(issues=issues, file=file)
    return policy


def load_labels(model: str | os.PathLike) -> list[str]:
    """A model's class names from ``DIR/labels.json`` (or that file itself)."""
    p = Path(model)
    f = p / "labels.json" if p.is_dir() else p
    try:
        labels = json.loads(f.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(f"{f}: cannot read the model's labels: {e.strerror or e}",
                          file=str(f)) from None
    except ValueError as e:
        raise PolicyError(f"{f}: not valid JSON: {e}", file=str(f)) from None
    if isinstance(labels, dict) and isinstance(labels.get("labels"), list):
        labels = labels["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise PolicyError(f"{f}: expected a JSON list of class names", file=str(f))
    return labels


def load_device_names(model: str | os.PathLike) -> list[str]:
    """A device model's types (``labels.json``) and kinds (``card.json``: the dataset's
    ``device.kinds``): the names a policy's ``device_types`` may use."""
    names = load_labels(model)
    f = Path(model) / "card.json"
    try:
        card = json.loads(f.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(f"{f}: cannot read the model card: {e.strerror or e}", file=str(f)) from None
    except ValueError as e:
        raise PolicyError(f"{f}: not valid JSON: {e}", file=str(f)) from None
    dev = (((card.get("data") or {}).get("manifest") or {}).get("options") or {}).get("device") \
        if isinstance(card, dict) else None
    if not isinstance(dev, dict):
        raise PolicyError(f"{f}: not a device model (no data.manifest.options.device; build its "
                          "dataset with `egw dataset build --by device`)", file=str(f))
    kinds = sorted({k for k in (dev.get("kinds") or {}).values() if isinstance(k, str)})
    return names + [k for k in kinds if k not in names]
