from __future__ import annotations

import pytest
from gpufleet_twin.kube.patches import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch

POD = {
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "plugin", "image": "v1", "env": [{"name": "MIG_STRATEGY", "value": "none"}]},
            {"name": "sidecar", "image": "s1"},
        ],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
    },
    "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]},
}


def test_merge_patch_is_rfc7386() -> None:
    patched = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"tolerations": []}})
    assert patched["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert patched["spec"]["tolerations"] == []  # lists are replaced wholesale
    assert patched["spec"]["containers"] == POD["spec"]["containers"]
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}, "the original must not be modified"


def test_strategic_merge_merges_keyed_lists() -> None:
    patched = strategic_merge_patch(
        POD,
        {
            "spec": {"containers": [{"name": "plugin", "env": [{"name": "MIG_STRATEGY", "value": "mixed"}]}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            "metadata": {"finalizers": ["y"]},
        },
    )
    plugin, sidecar = patched["spec"]["containers"]
    assert plugin == {"name": "plugin", "image": "v1", "env": [{"name": "MIG_STRATEGY", "value": "mixed"}]}
    assert sidecar == {"name": "sidecar", "image": "s1"}
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]
    assert patched["metadata"]["finalizers"] == ["x", "y"]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["plugin"]
    replaced = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert replaced["metadata"]["labels"] == {"only": "this"}
    pruned = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert pruned["metadata"]["finalizers"] == []
    ordered = strategic_merge_patch(POD, {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "plugin"}]}})
    assert ordered["spec"] == POD["spec"]


def test_strategic_merge_replaces_lists_without_merge_key() -> None:
    patched = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}})
    assert patched["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]


def test_json_patch_operations() -> None:
    patched = json_patch(
        POD,
        [
            {"op": "add", "path": "/metadata/labels/nvidia.com~1mig.config", "value": "all-1g.5gb"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "v2"},
            {"op": "remove", "path": "/spec/containers/1"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/moved"},
            {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "t"}},
            {"op": "test", "path": "/metadata/name", "value": "p"},
        ],
    )
    assert patched["metadata"]["labels"] == {"a": "1", "nvidia.com/mig.config": "all-1g.5gb", "copied": "1", "moved": "2"}
    assert [c["image"] for c in patched["spec"]["containers"]] == ["v2"]
    assert patched["spec"]["tolerations"][-1] == {"key": "t"}


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/metadata/name", "value": "other"}],
        [{"op": "remove", "path": "/metadata/labels/missing"}],
        [{"op": "replace", "path": "/spec/nothing", "value": 1}],
        [{"op": "add", "path": "/spec/containers/9", "value": {}}],
    ],
)
def test_json_patch_failures(operations: list[dict[str, object]]) -> None:
    with pytest.raises(PatchError):
        json_patch(POD, operations)


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"l": "1"}}, "data": {"a": "1", "b": "2"}}
    live = apply_patch(None, first, None)
    live["data"]["from-someone-else"] = "kept"
    second = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}}
    result = apply_patch(live, second, first)
    assert result["data"] == {"a": "3", "from-someone-else": "kept"}
    assert "labels" not in result["metadata"]
    assert result["metadata"]["name"] == "c"


def test_apply_keyed_list_items_are_pruned_individually() -> None:
    def daemonset(*containers: str) -> dict[str, object]:
        return {"spec": {"template": {"spec": {"containers": [{"name": n, "image": f"{n}:1"} for n in containers]}}}}

    live = apply_patch(None, daemonset("plugin", "gfd"), None)
    result = apply_patch(live, daemonset("plugin"), daemonset("plugin", "gfd"))
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "plugin", "image": "plugin:1"}]
