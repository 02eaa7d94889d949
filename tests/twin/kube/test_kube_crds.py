"""CustomResourceDefinitions and custom resources on the emulated cluster (in-process and over HTTPS)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

import pytest
from gpufleet_twin.kube import ApiError, ApiServer, Cluster
from kubernetes import client

GROUP = "example.gpufleet.dev"


def _crd(plural: str, kind: str, scope: str, *, status: bool = False, versions: tuple[str, ...] = ("v1",)) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"plural": plural, "kind": kind, "listKind": f"{kind}List", "singular": kind.lower(), "shortNames": [plural[:3]]},
            "scope": scope,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": index == 0,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    **({"subresources": {"status": {}}} if status else {}),
                }
                for index, version in enumerate(versions)
            ],
        },
    }


def _conditions(crd: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in crd["status"]["conditions"]}


def test_a_new_crd_is_established_and_served(cluster: Cluster) -> None:
    with pytest.raises(KeyError):
        cluster.resource("widgets")
    crd = cluster.create("customresourcedefinitions", _crd("widgets", "Widget", "Namespaced", status=True))
    stored = cluster.get("crd", crd["metadata"]["name"])
    assert _conditions(stored) == {"NamesAccepted": "True", "Established": "True"}
    assert stored["status"]["acceptedNames"]["kind"] == "Widget" and stored["status"]["storedVersions"] == ["v1"]

    widget = cluster.create(
        "widgets", {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ok": True}}, "default"
    )
    assert widget["metadata"]["generation"] == 1 and "ok" not in widget.get("status", {}), "status is ignored on create"
    updated = cluster.patch("widgets", "w", {"spec": {"size": 2}, "status": {"ok": True}}, "merge", "default")
    assert updated["metadata"]["generation"] == 2 and "ok" not in updated.get("status", {})
    status = cluster.patch("widgets", "w", {"status": {"ok": True}}, "merge", "default", subresource="status")
    assert status["status"] == {"ok": True} and status["spec"] == {"size": 2} and status["metadata"]["generation"] == 2


def test_a_cluster_scoped_crd_without_status_subresource(cluster: Cluster) -> None:
    cluster.create("crd", _crd("gadgets", "Gadget", "Cluster"))
    gadget = cluster.create("gadgets", {"metadata": {"name": "g"}, "spec": {"a": 1}, "status": {"seen": 1}})
    assert "namespace" not in gadget["metadata"] and gadget["status"] == {"seen": 1}, "without the subresource status is plain data"
    assert cluster.resource("gadgets").subresource("status") is None, "so /status is not served (see the HTTPS test)"


def test_invalid_crd_names_are_refused(cluster: Cluster) -> None:
    crd = _crd("widgets", "Widget", "Namespaced")
    crd["metadata"]["name"] = "widget.example.gpufleet.dev"
    with pytest.raises(ApiError) as refused:
        cluster.create("crd", crd)
    assert refused.value.code == 422 and 'must be spec.names.plural+"."+spec.group' in refused.value.message


def test_deleting_a_crd_deletes_its_objects_and_stops_serving(cluster: Cluster) -> None:
    cluster.create("crd", _crd("widgets", "Widget", "Namespaced", status=True))
    cluster.create("widgets", {"metadata": {"name": "w", "finalizers": ["example.gpufleet.dev/hold"]}}, "default")
    cluster.delete("crd", f"widgets.{GROUP}")
    with pytest.raises(KeyError):
        cluster.resource("widgets")
    deleted = [e for e in cluster.events_since(0) if e.type == "DELETED" and e.resource.kind == "Widget"]
    assert [e.object["metadata"]["name"] for e in deleted] == ["w"]

    cluster.create("crd", _crd("widgets", "Widget", "Namespaced", status=True))
    assert cluster.list("widgets", "default") == [], "a re-created CRD starts empty"


def test_snapshot_restores_custom_resources(cluster: Cluster) -> None:
    cluster.create("crd", _crd("gadgets", "Gadget", "Cluster"))
    cluster.create("gadgets", {"metadata": {"name": "g"}, "spec": {"a": 1}})
    restored = Cluster()
    restored.restore(cluster.snapshot())
    assert restored.get("gadgets", "g")["spec"] == {"a": 1}


def test_custom_resources_over_https_with_discovery(apiserver: ApiServer, kube_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(kube_client)
    extensions.create_custom_resource_definition(_crd("widgets", "Widget", "Namespaced", status=True, versions=("v1", "v1beta1")))
    extensions.create_custom_resource_definition(_crd("gadgets", "Gadget", "Cluster"))
    established = extensions.read_custom_resource_definition(f"widgets.{GROUP}")
    assert {c.type: c.status for c in established.status.conditions} == {"NamesAccepted": "True", "Established": "True"}

    groups = {g.name: [v.version for v in g.versions] for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert groups[GROUP] == ["v1", "v1beta1"]
    request = urllib.request.Request(f"{apiserver.url}/apis/{GROUP}/v1", headers={"Authorization": f"Bearer {apiserver.token}"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(apiserver.ca_path)), timeout=10) as response:
        resources = json.loads(response.read())
    listed = {r["name"]: r["namespaced"] for r in resources["resources"]}
    assert listed == {"widgets": True, "widgets/status": True, "gadgets": False}

    custom = client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "widgets", {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}})
    custom.patch_namespaced_custom_object_status(GROUP, "v1", "default", "widgets", "w", {"status": {"phase": "Ready"}})
    assert custom.get_namespaced_custom_object(GROUP, "v1beta1", "default", "widgets", "w")["status"] == {"phase": "Ready"}
    custom.create_cluster_custom_object(GROUP, "v1", "gadgets", {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    assert [g["metadata"]["name"] for g in custom.list_cluster_custom_object(GROUP, "v1", "gadgets")["items"]] == ["g"]

    with pytest.raises(client.ApiException) as no_status:
        custom.patch_cluster_custom_object_status(GROUP, "v1", "gadgets", "g", {"status": {"x": 1}})
    assert no_status.value.status == 404

    extensions.delete_custom_resource_definition(f"gadgets.{GROUP}")
    with pytest.raises(client.ApiException) as gone:
        custom.list_cluster_custom_object(GROUP, "v1", "gadgets")
    assert gone.value.status == 404
