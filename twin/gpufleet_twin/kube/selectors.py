"""Label selectors, field selectors and node selector terms, as the real API server evaluates them.

Pure functions over plain dicts. Parse errors raise ``SelectorError``; the HTTP layer answers 400.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    pass


_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY_RE = re.compile(rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$")
_LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")

_SET_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_NOT_EXISTS_RE = re.compile(r"^!\s*(?P<key>[^\s!=<>(),]+)$")
_COMPARE_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|=|!=|<|>)\s*(?P<value>[^\s!=<>(),]*)$")
_EXISTS_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "In":
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator in ("Gt", "Lt"):
            try:
                have, bound = int(str(value)), int(self.values[0])
            except (TypeError, ValueError):
                return False
            return have > bound if self.operator == "Gt" else have < bound
        raise SelectorError(f"unknown operator {self.operator!r}")


LabelSelector = tuple[Requirement, ...]


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> str:
    if len(key) > 317 or not _LABEL_KEY_RE.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
        raise SelectorError(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the ``labelSelector`` query syntax: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``, ``k>1``, ``k<1``."""
    if not text or not text.strip():
        return ()
    requirements = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"unable to parse requirement: found '', expected: identifier in {text!r}")
        if match := _SET_RE.match(part):
            values = tuple(_check_value(v.strip()) for v in match["values"].split(","))
            operator = "In" if match["op"] == "in" else "NotIn"
            requirements.append(Requirement(_check_key(match["key"]), operator, values))
        elif match := _NOT_EXISTS_RE.match(part):
            requirements.append(Requirement(_check_key(match["key"]), "DoesNotExist"))
        elif match := _COMPARE_RE.match(part):
            op, value = match["op"], match["value"]
            if op in ("<", ">"):
                if not re.fullmatch(r"-?\d+", value):
                    raise SelectorError(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                requirements.append(Requirement(_check_key(match["key"]), "Gt" if op == ">" else "Lt", (value,)))
            else:
                operator = "NotIn" if op == "!=" else "In"
                requirements.append(Requirement(_check_key(match["key"]), operator, (_check_value(value),)))
        elif match := _EXISTS_RE.match(part):
            requirements.append(Requirement(_check_key(match["key"]), "Exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return tuple(requirements)


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in selector)


_EXPRESSION_OPERATORS = {"In", "NotIn", "Exists", "DoesNotExist"}


def label_selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector | None:
    """Convert a ``metav1.LabelSelector`` dict; ``None`` means "selects nothing", ``()`` means "selects everything"."""
    if selector is None:
        return None
    requirements = [Requirement(_check_key(k), "In", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        operator = expression.get("operator")
        if operator not in _EXPRESSION_OPERATORS:
            raise SelectorError(f"{operator!r} is not a valid label selector operator")
        values = tuple(str(v) for v in expression.get("values") or ())
        if operator in ("In", "NotIn") and not values:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        requirements.append(Requirement(_check_key(expression.get("key", "")), operator, values))
    return tuple(requirements)


def object_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None, *, empty_matches: bool) -> bool:
    """Match a ``metav1.LabelSelector`` dict against labels.

    ``empty_matches`` chooses what an empty selector means: everything for DaemonSets and Deployments,
    nothing for PodDisruptionBudgets (the eviction handler skips PDBs whose selector is empty).
    """
    try:
        requirements = label_selector_from_object(selector)
    except SelectorError:
        return False
    if requirements is None:
        return False
    if not requirements:
        return empty_matches
    return labels_match(requirements, labels)


def node_selector_term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """One ``NodeSelectorTerm``: all its expressions and fields must hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node.get("metadata", {}).get("labels") or {}
    for expression in expressions:
        requirement = Requirement(expression.get("key", ""), expression.get("operator", ""), tuple(expression.get("values") or ()))
        if not requirement.matches(labels):
            return False
    node_fields = {"metadata.name": node.get("metadata", {}).get("name", "")}
    for expression in fields:
        requirement = Requirement(expression.get("key", ""), expression.get("operator", ""), tuple(expression.get("values") or ()))
        if not requirement.matches(node_fields):
            return False
    return True


def node_selector_matches(node_selector: Mapping[str, Any] | None, node: Mapping[str, Any]) -> bool:
    """A ``NodeSelector`` (required node affinity): the terms are ORed; no selector matches every node."""
    if not node_selector:
        return True
    terms = node_selector.get("nodeSelectorTerms") or []
    return any(node_selector_term_matches(term, node) for term in terms)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


def parse_field_selector(text: str | None, supported: frozenset[str]) -> tuple[FieldRequirement, ...]:
    """Parse ``fieldSelector``: ``f=v``, ``f==v``, ``f!=v`` joined by commas, only on fields the resource indexes."""
    if not text or not text.strip():
        return ()
    requirements = []
    for raw in text.split(","):
        part = raw.strip()
        match = re.fullmatch(r"(?P<field>[^!=\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*)", part)
        if not match:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {part!r}")
        if match["field"] not in supported:
            raise SelectorError(f"field label not supported: {match['field']}")
        requirements.append(FieldRequirement(match["field"], match["value"].strip(), match["op"] != "!="))
    return tuple(requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "source":  # events index source.component under the short name
        path = "source.component"
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(requirements: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all((_field_value(obj, r.field) == r.value) == r.equal for r in requirements)
