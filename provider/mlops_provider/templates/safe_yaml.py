"""Read a model config's YAML with bounds: file size, alias expansion, nesting depth; no duplicate keys.

A few hundred bytes of nested aliases (``&a [x, x]``, ``&b [*a, *a]``, ...) expand to millions of values.
PyYAML builds them as shared objects in microseconds; it is whatever walks the result afterwards (the
schema's validation, the config hash, the DAG builder) that stalls the DAG file. So the composed node
graph is measured before anything is constructed: :class:`BoundedSafeLoader` counts the values the
document would hold with every alias expanded (each node once, memoised) and the alias references,
and refuses a document over :data:`MAX_VALUES` values or :data:`MAX_ALIASES` aliases, a recursive
alias, or nesting deeper than :data:`MAX_DEPTH`. Files over :data:`MAX_CONFIG_BYTES` are refused before
parsing. The cost is one pass over the distinct nodes (a few hundred for a real config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_CONFIG_BYTES = 256 * 1024
MAX_VALUES = 100_000  # every scalar, list and mapping, aliases expanded
MAX_ALIASES = 1_000  # alias references (``*name``), merge keys included
MAX_DEPTH = 64

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigTooLargeError(ValueError):
    """A config file or its YAML document exceeds a bound; the message says which."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node) -> int:
    """The number of values ``root`` holds with aliases expanded; ConfigTooLargeError over a bound."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size; -1 while the node is being walked
    aliases = 0

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        seen = sizes.get(id(node))
        if seen is not None:
            if seen < 0:
                raise ConfigTooLargeError("recursive alias: a node contains itself")
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigTooLargeError(f"more than {MAX_ALIASES} alias references (*name)")
            return seen
        if depth > MAX_DEPTH:
            raise ConfigTooLargeError(f"nesting deeper than {MAX_DEPTH} levels")
        sizes[id(node)] = -1
        if isinstance(node, yaml.MappingNode):
            check_unique_keys(node)
        total = 1
        for child in _children(node):
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                raise ConfigTooLargeError(
                    f"more than {MAX_VALUES} values once aliases are expanded (an alias bomb?)"
                )
        sizes[id(node)] = total
        return total

    return size(root, 0)


MERGE_TAG = "tag:yaml.org,2002:merge"


def check_unique_keys(node: yaml.MappingNode) -> None:
    """A key given twice in one mapping is an error (YAML says so; PyYAML keeps the last silently)."""
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
            continue
        first = seen.setdefault((key.tag, key.value), key.start_mark.line + 1)
        if first != key.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key.value!r} (first at line {first})", key.start_mark
            )


class BoundedSafeLoader(_Base):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml when available) that checks the node graph before constructing."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return self.construct_document(node)


def read_config_text(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """The file's text, refused (ConfigTooLargeError) when over ``limit`` bytes, without reading more."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigTooLargeError(f"file is larger than {limit // 1024} KiB; a model config is a few KiB")
    return data.decode("utf-8")


def load_yaml(text: str) -> Any:
    """One YAML document, bounded (see the module doc); yaml.YAMLError or ConfigTooLargeError."""
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)
    except RecursionError:  # the pure-Python composer on deep nesting (libyaml stops at 1000 levels)
        raise ConfigTooLargeError(f"nesting deeper than {MAX_DEPTH} levels") from None
