from __future__ import annotations

import pytest
from gpufleet_twin.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    node_selector_matches,
    object_selector_matches,
    parse_field_selector,
    parse_label_selector,
)

GPU_NODE = {"nvidia.com/gpu.present": "true", "nvidia.com/mig.strategy": "mixed", "zone": "a"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("nvidia.com/gpu.present=true", True),
        ("nvidia.com/gpu.present==true", True),
        ("nvidia.com/gpu.present!=true", False),
        ("nvidia.com/mig.config!=all-1g.5gb", True),  # != also matches an absent label
        ("nvidia.com/mig.strategy in (single, mixed)", True),
        ("nvidia.com/mig.strategy notin (single,mixed)", False),
        ("nvidia.com/mig.config notin (all-disabled)", True),  # notin matches an absent label
        ("nvidia.com/gpu.present", True),
        ("!nvidia.com/gpu.present", False),
        ("!nvidia.com/mig.config", True),
        ("zone=a,nvidia.com/mig.strategy in (mixed),!nvidia.com/mig.config", True),
        ("zone=a,zone=b", False),
        ("", True),
    ],
)
def test_label_selector_grammar(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), GPU_NODE) is expected


def test_numeric_comparisons() -> None:
    assert labels_match(parse_label_selector("gpus>4"), {"gpus": "8"})
    assert not labels_match(parse_label_selector("gpus<4"), {"gpus": "8"})
    assert not labels_match(parse_label_selector("gpus>4"), {})


@pytest.mark.parametrize("bad", ["zone=a,", "zone in a,b", "Not A Key=1", "zone=has space x", "x>y"])
def test_unparsable_label_selectors_are_errors(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_object_selector_empty_semantics() -> None:
    labels = {"app": "web"}
    assert object_selector_matches({}, labels, empty_matches=True)
    assert not object_selector_matches({}, labels, empty_matches=False)
    assert not object_selector_matches(None, labels, empty_matches=True)
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    assert object_selector_matches(selector, labels, empty_matches=False)
    assert not object_selector_matches(selector, {"app": "web", "tier": "x"}, empty_matches=False)


def test_node_selector_terms_are_ored_and_expressions_anded() -> None:
    node = {"metadata": {"name": "gpu-0", "labels": GPU_NODE}}
    nfd_or_manual = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}]},
            {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]},
        ]
    }
    assert node_selector_matches(nfd_or_manual, node)
    both = {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                ]
            }
        ]
    }
    assert not node_selector_matches(both, node)
    by_name = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-0"]}]}]}
    assert node_selector_matches(by_name, node)
    assert not node_selector_matches({"nodeSelectorTerms": [{}]}, node)


def test_field_selectors() -> None:
    supported = frozenset({"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "spec.hostNetwork"})
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "gpu-0", "hostNetwork": True}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("spec.nodeName=gpu-0,status.phase!=Succeeded", supported), pod)
    assert not fields_match(parse_field_selector("spec.nodeName==gpu-1", supported), pod)
    assert fields_match(parse_field_selector("spec.hostNetwork=true", supported), pod)
    assert fields_match(parse_field_selector("spec.nodeName=", supported), {"metadata": {"name": "unbound"}})
    with pytest.raises(SelectorError, match="field label not supported: spec.schedulerName"):
        parse_field_selector("spec.schedulerName=x", supported)
