"""k8s_node.py: the node patch and the diff it shows (pure)."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import TaskError
from ansible_collections.gpufleet.mig.plugins.module_utils._k8s_node import label_value, plan_node_update

NODE = {
    "metadata": {"name": "gpu-0", "labels": {"kubernetes.io/hostname": "gpu-0", "nvidia.com/mig.config": "all-1g.5gb"},
                 "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
    "spec": {},
}
CORDONED = {"metadata": NODE["metadata"], "spec": {"unschedulable": True}}


def test_cordon_patches_only_the_spec():
    patch, before, after = plan_node_update(NODE, unschedulable=True)
    assert patch == {"spec": {"unschedulable": True}}
    assert (before, after) == ({"unschedulable": False}, {"unschedulable": True})


def test_uncordon_removes_the_field_as_kubectl_does():
    assert plan_node_update(CORDONED, unschedulable=False)[0] == {"spec": {"unschedulable": None}}


def test_node_already_in_state_with_its_labels_needs_no_patch():
    patch, before, after = plan_node_update(CORDONED, unschedulable=True, labels={"nvidia.com/mig.config": "all-1g.5gb", "absent": None})
    assert patch is None and before == after


def test_labels_and_annotations_patch_only_what_differs_and_null_removes():
    patch, before, after = plan_node_update(
        NODE, labels={"nvidia.com/mig.config": "all-balanced", "kubernetes.io/hostname": "gpu-0", "nvidia.com/mig.config.state": None},
        annotations={"node.alpha.kubernetes.io/ttl": None, "gpufleet/rollout": "2"})
    assert patch == {"metadata": {"labels": {"nvidia.com/mig.config": "all-balanced"},
                                  "annotations": {"node.alpha.kubernetes.io/ttl": None, "gpufleet/rollout": "2"}}}
    assert before == {"unschedulable": False,
                      "labels": {"kubernetes.io/hostname": "gpu-0", "nvidia.com/mig.config": "all-1g.5gb", "nvidia.com/mig.config.state": None},
                      "annotations": {"gpufleet/rollout": None, "node.alpha.kubernetes.io/ttl": "0"}}
    assert after["labels"]["nvidia.com/mig.config"] == "all-balanced" and after["annotations"]["node.alpha.kubernetes.io/ttl"] is None


@pytest.mark.parametrize("value, text", [(True, "true"), (False, "false"), (3, "3"), ("x", "x"), (None, None)])
def test_label_values_become_strings(value, text):
    assert label_value("k", value) == text


def test_structured_label_values_are_refused():
    with pytest.raises(TaskError, match=r"^Cannot set label team: its value must be a string, or null to remove it, not dict\.$"):
        plan_node_update(NODE, labels={"team": {"a": 1}})
