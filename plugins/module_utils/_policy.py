# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet policies: a node's desired MIG layout chosen by JMESPath expressions over what the node is.

``mig_policies`` is a list; each entry has ``match`` (a JMESPath expression) and exactly one of
``mig_config`` (a config name, built in or from ``mig_config_file``) or ``mig_layout`` (inline, ``disabled``
allowed). Each expression is searched in one document per node: what ``gpu_info`` returns, plus ``labels``
(the node's Kubernetes labels) and ``inventory_hostname``. A node matches when the result is truthy in
JMESPath's sense (https://jmespath.org/specification.html#or-expressions: not null, false, or an empty
list, object or string). The first entry that matches wins; a host's own ``mig_config`` / ``mig_layout``
wins over every entry.

Pure functions; ``jmespath`` runs on the control host (filter ``gpufleet.mig.mig_policy_resolve``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

try:
    import jmespath
    from jmespath.exceptions import JMESPathError

    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - reported by the callers
    jmespath = None
    JMESPathError = Exception
    HAS_JMESPATH = False

POLICY_DEFAULTS = ("fail", "skip")
_LAYOUT_KEYS = ("mig_config", "mig_layout")
_KNOWN_KEYS = frozenset(("match", "mig_config", "mig_layout", "name"))
# gpu_info's own bookkeeping; not part of what the node is.
_RESULT_NOISE = frozenset(("changed", "failed", "invocation", "warnings", "deprecations", "skipped", "msg"))


def jmespath_truthy(value: Any) -> bool:
    """JMESPath truthiness: false for null, false, and empty lists, objects and strings; numbers are true."""
    if value is None or value is False:
        return False
    if isinstance(value, (list, dict, str)) and len(value) == 0:
        return False
    return True


def describe_policy(index: int, policy: Any) -> str:
    """``mig_policies[2] (match: gpus[?...])``: how messages name a policy (0-based, as YAML lists read)."""
    match = policy.get("match") if isinstance(policy, dict) else None
    return "mig_policies[%d] (match: %s)" % (index, match)


def policy_problems(policies: Any) -> List[str]:
    """Every problem of a ``mig_policies`` list, each naming the entry and its expression; empty when valid."""
    if policies is None:
        return []
    if not isinstance(policies, list):
        return ["mig_policies must be a list of {match, mig_config | mig_layout} entries, got %s"
                % type(policies).__name__]
    problems = []
    for index, policy in enumerate(policies):
        if not isinstance(policy, dict):
            problems.append("mig_policies[%d] must be a mapping with match and mig_config or mig_layout, got %r"
                            % (index, policy))
            continue
        where = describe_policy(index, policy)
        unknown = sorted(str(key) for key in policy if key not in _KNOWN_KEYS)
        if unknown:
            problems.append("%s: unknown key(s) %s; an entry takes match and one of mig_config or mig_layout"
                            % (where, ", ".join(unknown)))
        match = policy.get("match")
        if not isinstance(match, str) or not match.strip():
            problems.append("mig_policies[%d]: match must be a non-empty JMESPath expression, got %r" % (index, match))
        elif HAS_JMESPATH:
            try:
                jmespath.compile(match)
            except JMESPathError as error:
                problems.append("%s: not a valid JMESPath expression: %s" % (where, _one_line(error)))
        given = [key for key in _LAYOUT_KEYS if policy.get(key) is not None]
        if len(given) != 1:
            problems.append("%s: set exactly one of mig_config (a config name) or mig_layout (an inline layout), got %s"
                            % (where, " and ".join(given) or "neither"))
        elif given == ["mig_config"] and not (isinstance(policy["mig_config"], str) and policy["mig_config"].strip()):
            problems.append("%s: mig_config must be a config name, got %r" % (where, policy["mig_config"]))
        elif given == ["mig_layout"] and not isinstance(policy["mig_layout"], (dict, str)):
            problems.append("%s: mig_layout must be a mapping or 'disabled', got %r" % (where, policy["mig_layout"]))
    return problems


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def node_document(gpu_info: Dict[str, Any], labels: Optional[Dict[str, str]] = None, inventory_hostname: Optional[str] = None) -> Dict[str, Any]:
    """The document every ``match`` is searched in: gpu_info's result, ``labels`` and ``inventory_hostname``."""
    document = dict((key, value) for key, value in (gpu_info or {}).items()
                    if key not in _RESULT_NOISE and not key.startswith("ansible_"))
    document["labels"] = dict(labels or {})
    document["inventory_hostname"] = inventory_hostname
    return document


def resolve_node_policy(policies: Optional[List[Dict[str, Any]]], gpu_info: Dict[str, Any], labels: Optional[Dict[str, str]] = None,
                        inventory_hostname: Optional[str] = None, default: str = "fail", host_config: Optional[str] = None,
                        host_layout: Any = None) -> Dict[str, Any]:
    """``resolve_policy`` on the node's document (``node_document``): what the filter and the preflight action call."""
    document = node_document(gpu_info, labels=labels, inventory_hostname=inventory_hostname)
    return resolve_policy(policies, document, default=default, host_config=host_config, host_layout=host_layout)


def resolve_policy(policies: Optional[List[Dict[str, Any]]], document: Dict[str, Any], default: str = "fail", host_config: Optional[str] = None,
                   host_layout: Any = None) -> Dict[str, Any]:
    """Where the node's desired layout comes from, as a dict:

    * ``source``: ``host`` (the host's own mig_config / mig_layout), ``policy``, ``skip`` or ``none``;
    * ``mig_config`` / ``mig_layout``: the layout to plan (one of them; None for skip and none);
    * ``policy_index`` and ``match``: the matching entry (source ``policy``);
    * ``description``: one line for the preflight output;
    * ``problem``: why the node cannot be planned (None when it can).

    Malformed policies are a problem even when the host's own value wins, so a typo never waits for the
    one node it would have matched.
    """
    if default not in POLICY_DEFAULTS:
        return _result("none", problem="mig_policy_default must be one of %s, got %r" % (", ".join(POLICY_DEFAULTS), default))
    problems = policy_problems(policies)
    if problems:
        return _result("none", problem="; ".join(problems))
    if not HAS_JMESPATH and policies:
        return _result("none", problem="mig_policies need the Python library jmespath on the control host (pip install jmespath)")
    host_has_config = isinstance(host_config, str) and bool(host_config.strip())
    if host_has_config or host_layout is not None:
        key = "mig_config" if host_has_config else "mig_layout"
        return _result("host", mig_config=host_config if host_has_config else None,
                       mig_layout=None if host_has_config else host_layout,
                       description="layout from the host variable %s" % key)
    for index, policy in enumerate(policies or ()):
        try:
            found = jmespath.search(policy["match"], document)
        except JMESPathError as error:
            # Type errors (a function given the wrong type) surface only at search time.
            return _result("none", problem="%s cannot be evaluated on this node: %s"
                           % (describe_policy(index, policy), _one_line(error)))
        if jmespath_truthy(found):
            return _result("policy", mig_config=policy.get("mig_config"), mig_layout=policy.get("mig_layout"),
                           policy_index=index, match=policy["match"],
                           description="layout from %s" % describe_policy(index, policy))
    if not policies:
        return _result("none", problem="no desired MIG layout: set mig_config (a config name, built in or from "
                                       "mig_config_file) or mig_layout for this host, or fleet mig_policies")
    if default == "skip":
        return _result("skip", description="no policy of %d matches and the host sets no layout: skipped "
                                           "(mig_policy_default: skip)" % len(policies))
    return _result("none", problem="no desired MIG layout: none of the %d mig_policies matches this node (%s) and "
                                   "the host sets no mig_config / mig_layout; add a policy or a host value, or set "
                                   "mig_policy_default: skip to leave such nodes alone"
                   % (len(policies), "; ".join("[%d] %s" % (i, p["match"]) for i, p in enumerate(policies))))


def _result(source: str, mig_config: Optional[str] = None, mig_layout: Any = None, policy_index: Optional[int] = None, match: Optional[str] = None,
            description: Optional[str] = None, problem: Optional[str] = None) -> Dict[str, Any]:
    return {"source": source, "mig_config": mig_config, "mig_layout": mig_layout, "policy_index": policy_index,
            "match": match, "description": description, "problem": problem}


def fleet_problem(policies: Optional[List[Dict[str, Any]]], resolutions: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The fleet-wide refusal: policies are set, some node needed one, and none got its layout from them.

    ``resolutions`` are ``resolve_policy`` results of every node of the play.
    """
    if not policies or not isinstance(policies, list):
        return None
    resolutions = [item for item in resolutions if isinstance(item, dict)]
    needing = [item for item in resolutions if item.get("source") != "host"]
    if not needing or any(item.get("source") == "policy" for item in resolutions):
        return None
    return ("mig_policies give no node a layout: none of %s matches any of the %d node(s) without a host value"
            % ("; ".join("[%d] %s" % (i, p.get("match") if isinstance(p, dict) else p) for i, p in enumerate(policies)),
               len(needing)))
