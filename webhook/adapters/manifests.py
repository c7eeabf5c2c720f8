"""Reading the CLI's input: files, directories and stdin of YAML or JSON Kubernetes manifests.

``helm template … | pullguard check -`` is the main use, so multi-document YAML, JSON, and
``kind: List`` (what ``kubectl get -o yaml`` prints) are all read. Each object remembers where
it came from (``rendered.yaml#3``) and keeps its YAML node tree, so a renderer can point at the
exact line of an image (GitHub annotations, SARIF regions). PyYAML's libyaml ``CSafeLoader`` is
used when present: it is ~8x faster on large Helm renders (research/test-infrastructure.md §6).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.core.errors import ManifestError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml ships in the manylinux wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Document:
    """One Kubernetes object of the input."""

    obj: Mapping[str, Any]
    source: str  # "rendered.yaml#3" or "rendered.yaml#3/items[0]"
    path: str  # the file ("-" for stdin)
    node: yaml.Node | None  # the YAML node of ``obj`` (for line numbers)
    line_offset: int = 0  # lines before ``node``'s text (a JSON stream composes each object alone)

    def line_of(self, field: str | None) -> int | None:
        """1-based line of ``field`` ("spec.containers[0].image"; None: the object) in the file."""
        node = self.node
        if node is None:
            return None
        best = node.start_mark.line + 1 + self.line_offset
        for part in _split_path(field or ""):
            if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
                if part >= len(node.value):
                    return best
                node = node.value[part]
            elif isinstance(part, str) and isinstance(node, yaml.MappingNode):
                nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
                if nxt is None:
                    return best
                node = nxt
            else:
                return best
            best = node.start_mark.line + 1 + self.line_offset
        return best


def _split_path(field: str) -> Iterator[str | int]:
    for piece in field.split("."):
        name, _, rest = piece.partition("[")
        if name:
            yield name
        while rest:
            idx, _, rest = rest.partition("]")
            if idx.isdigit():
                yield int(idx)
            rest = rest.lstrip("[")


def _load(text: str, path: str) -> Iterator[tuple[int, Any, yaml.Node]]:
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            yield index, loader.construct_document(node), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None:
            # libyaml reports an unclosed bracket where the input ends; where it opened helps more.
            problem += f" ({context} started at line {start.line + 1} column {start.column + 1})"
        raise ManifestError(f"{path}#{index + 1}", f"not valid YAML/JSON at{where}: {problem}") from None
    finally:
        loader.dispose()


def _load_json_stream(text: str, path: str) -> Iterator[tuple[int, Any, yaml.Node | None, int]]:
    """Concatenated or newline-delimited JSON objects (``kubectl get -o json`` output joined, NDJSON).

    YAML reads one JSON document but not several without ``---`` between them; kubectl accepts
    both. Each object is also composed as YAML on its own; the lines before it are its offset,
    so field lines stay exact (and the work stays linear in the input).
    """
    decoder = json.JSONDecoder()
    pos = counted = index = line = 0  # newlines before ``counted`` are in ``line``
    while True:
        while pos < len(text) and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= len(text):
            return
        index += 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise ManifestError(f"{path}#{index}", f"not valid JSON at {where}: {exc.msg}") from None
        line += text.count("\n", counted, pos)
        counted = pos
        node: yaml.Node | None
        try:
            node = yaml.compose(text[pos:end], Loader=_Loader)
        except yaml.YAMLError:
            node = None  # valid JSON that YAML 1.1 reads differently: no line numbers, same object
        yield index, obj, node, line
        pos = end


def parse_text(text: str, path: str) -> list[Document]:
    """Every object of one file; ``kind: List`` is expanded into its items."""
    docs: list[Document] = []
    loaded: list[tuple[int, Any, yaml.Node | None, int]]
    try:
        loaded = [(index, obj, node, 0) for index, obj, node in _load(text, path)]
    except ManifestError:
        if not text.lstrip(" \t\r\n\ufeff").startswith("{"):
            raise
        loaded = list(_load_json_stream(text, path))
    for index, obj, node, offset in loaded:
        source = f"{path}#{index}"
        if obj is None:
            continue
        if not isinstance(obj, Mapping):
            raise ManifestError(
                source, f"expected a Kubernetes object (a mapping), found {type(obj).__name__}"
            )
        if obj.get("kind") == "List" or (
            str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list)
        ):
            items = obj.get("items")
            if not isinstance(items, list):
                raise ManifestError(source, "items must be a list", "items")
            item_nodes = _items_node(node)
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    raise ManifestError(
                        source, f"expected an object, found {type(item).__name__}", f"items[{i}]"
                    )
                inode = item_nodes[i] if item_nodes is not None and i < len(item_nodes) else None
                docs.append(Document(item, f"{source}/items[{i}]", path, inode, offset))
            continue
        docs.append(Document(obj, source, path, node, offset))
    return docs


def _items_node(node: yaml.Node | None) -> list[yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return None


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return [path]


def read_inputs(paths: Sequence[str], stdin_text: str | None = None) -> list[Document]:
    """Read every path (``-`` is stdin); raises ``ManifestError`` naming the file and document."""
    docs: list[Document] = []
    for raw in paths or ["-"]:
        if raw == "-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
            docs.extend(parse_text(text, "-"))
            continue
        base = Path(raw)
        if not base.exists():
            raise ManifestError(raw, "no such file or directory")
        for file in _files(base):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(str(file), f"cannot read: {exc}") from None
            docs.extend(parse_text(text, str(file)))
    return docs
