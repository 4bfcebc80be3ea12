"""The YAML loader behind policy files: PyYAML's SafeLoader with policy-friendly
implicit types and the nesting and alias limits of :class:`PolicyLimits`, enforced
while the node tree is composed (before anything walks it)."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .limits import PolicyLimits

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class LimitExceeded(yaml.MarkedYAMLError):
    """A document beyond the limits (not a YAML syntax error)."""


class Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 numbers (so that a MAC such as
    ``10:22:33:44:55:59`` stays a string) and without implicit octal.

    Composing refuses nesting deeper than ``limits.max_depth`` (PyYAML's composer
    recurses: thousands of ``[`` would raise RecursionError), recursive aliases, and
    aliases that expand to more than ``limits.max_alias_nodes`` nodes (an alias
    bomb: a few hundred bytes that expand to billions of nodes)."""

    limits = PolicyLimits()

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                raise LimitExceeded(None, None, f"nested more than {self.limits.max_depth} "
                                    "levels deep (the limit)", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        node = self.anchors.get(event.anchor)
        if node is None:
            return                      # undefined alias: the composer's own error
        if node.end_mark is None:       # still being composed: it contains itself
            raise LimitExceeded(None, None, f"alias *{event.anchor} refers to a node "
                                "that contains it (recursive alias)", event.start_mark)
        self._alias_nodes += expanded_size(node, self._sizes)
        if self._alias_nodes > self.limits.max_alias_nodes:
            raise LimitExceeded(None, None, "aliases expand to more than "
                                f"{self.limits.max_alias_nodes} nodes (the limit; an alias "
                                "bomb?)", event.start_mark)


def expanded_size(root: yaml.Node, memo: dict[int, int]) -> int:
    """Number of nodes of ``root`` with every alias expanded, in time linear in the
    distinct nodes (``memo`` keeps each node's size by id; the tree must be acyclic)."""
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in memo:
            continue
        kids = _children(node)
        if children_done:
            memo[id(node)] = 1 + sum(memo[id(k)] for k in kids)
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in memo)
    return memo[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in (_INT, _FLOAT)]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                        |\.[0-9_]+(?:[eE][-+][0-9]+)?
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


