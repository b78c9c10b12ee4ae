"""Label and field selectors as the Kubernetes API defines them (apimachinery labels, fields)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector string or object that does not parse."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement: key, operator (=, !=, in, notin, exists, !, gt, lt), values."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this requirement."""
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op in ("=", "==", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            try:
                have, want = int(value), int(self.values[0])
            except (ValueError, IndexError):
                return False
            return present and (have > want if self.op == "gt" else have < want)
        raise SelectorError(f"unknown operator {self.op!r}")

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        if self.op in ("gt", "lt"):
            return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; empty matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether `labels` satisfy every requirement."""
        have = labels or {}
        return all(req.matches(have) for req in self.requirements)

    def empty(self) -> bool:
        """True when the selector has no requirement."""
        return not self.requirements

    def __str__(self) -> str:
        # labels.Selector.String() sorts requirements by key.
        return ",".join(str(r) for r in sorted(self.requirements, key=lambda r: r.key))


_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SelectorError(f"unable to parse requirement: {text!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the string form (`a=b,c!=d,e in (x,y),!f,g`)."""
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(toks):
            raise SelectorError(f"unexpected end of selector {text!r}")
        tok = toks[i]
        i += 1
        return tok

    while i < len(toks):
        tok = take()
        if tok == "!":
            reqs.append(Requirement(take(), "!"))
        else:
            key = tok
            nxt = toks[i] if i < len(toks) else ","
            if nxt == ",":
                reqs.append(Requirement(key, "exists"))
            elif nxt in ("=", "==", "!="):
                i += 1
                value = toks[i] if i < len(toks) and toks[i] != "," else ""
                if value:
                    i += 1
                reqs.append(Requirement(key, "!=" if nxt == "!=" else "=", (value,)))
            elif nxt in (">", "<"):
                i += 1
                reqs.append(Requirement(key, "gt" if nxt == ">" else "lt", (take(),)))
            elif nxt in ("in", "notin"):
                i += 1
                if take() != "(":
                    raise SelectorError(f"found '{toks[i - 1]}', expected: '('")
                values: list[str] = []
                while True:
                    tok = take()
                    if tok == ")":
                        break
                    if tok != ",":
                        values.append(tok)
                reqs.append(Requirement(key, nxt, tuple(values)))
            else:
                raise SelectorError(f"unable to parse requirement: found '{nxt}'")
        if i < len(toks):
            if toks[i] != ",":
                raise SelectorError(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
    return LabelSelector(tuple(reqs))


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_object(obj: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels, matchExpressions) as a LabelSelector."""
    if not obj:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (obj.get("matchLabels") or {}).items()]
    for expr in obj.get("matchExpressions") or []:
        op = _EXPR_OPS.get(expr.get("operator", ""))
        if op is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def format_selector(obj: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: the string form, `<none>` when empty."""
    try:
        text = str(selector_from_object(obj))
    except SelectorError:
        return "<error>"
    return text or "<none>"


@dataclass(frozen=True)
class FieldSelector:
    """Field requirements (`path=value`, `path!=value`), ANDed."""

    requirements: tuple[tuple[str, str, str], ...] = ()

    def matches(self, fields: Callable[[str], str | None]) -> bool:
        """Whether the object whose field values `fields(path)` returns matches."""
        for path, op, value in self.requirements:
            have = fields(path)
            if have is None:
                raise SelectorError(f"field label not supported: {path}")
            if (have == value) != (op == "="):
                return False
        return True


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `a=b,c!=d,e==f`."""
    reqs: list[tuple[str, str, str]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = part.partition(op)
                reqs.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(tuple(reqs))
