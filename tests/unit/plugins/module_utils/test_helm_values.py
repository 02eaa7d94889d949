"""helm_values.py: user values from values_files, values and set_values as kubernetes.core.helm users write them."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._helm import HelmError, parse_yaml_document
from ansible_collections.gpufleet.mig.plugins.module_utils._helm_values import (
    HelmValuesError,
    merge_user_values,
    read_values_files,
    resolve_chart_ref,
    set_values_document,
    user_values,
)


def test_set_syntax_types_paths_and_lists():
    document = set_values_document([
        {"value": "migStrategy=mixed,gfd.enabled=true,replicas=2,zero=0,octal=010,nothing=null"},
        {"value": "image.tag=020", "value_type": "string"},
        {"value": "tolerations[1].key=nvidia.com/gpu,names={a,b}"},
        {"value": r"nodeSelector.kubernetes\.io/os=linux"},
        {"value": 'affinity={"nodeAffinity": {"x": [1]}}', "value_type": "json"},
    ])
    assert document == {
        "migStrategy": "mixed", "gfd": {"enabled": True}, "replicas": 2, "zero": 0, "octal": "010", "nothing": None,
        "image": {"tag": "020"},
        "tolerations": [None, {"key": "nvidia.com/gpu"}], "names": ["a", "b"],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {"nodeAffinity": {"x": [1]}},
    }


def test_set_file_reads_relative_to_the_base_dir(tmp_path: Path):
    (tmp_path / "config.yaml").write_text("version: v1\n")
    assert set_values_document([{"value": "config.map.default=config.yaml", "value_type": "file"}], str(tmp_path)) == {
        "config": {"map": {"default": "version: v1\n"}}
    }


@pytest.mark.parametrize("entry", [{"value": "novalue"}, {"value": "=x"}, {"value": "a=1", "value_type": "yaml"}, {"value": "a={", "value_type": "json"}])
def test_bad_set_values_are_refused(entry):
    with pytest.raises(HelmValuesError, match="set_values"):
        set_values_document([entry])


def test_order_files_then_values_then_set(tmp_path: Path):
    (tmp_path / "one.yml").write_text("migStrategy: none\ngfd: {enabled: false, sleepInterval: 60s}\n")
    (tmp_path / "two.yml").write_text("migStrategy: single\n")
    files = read_values_files(["one.yml", str(tmp_path / "two.yml")], str(tmp_path), parse_yaml_document)
    merged = user_values(files, {"gfd": {"enabled": True}}, set_values_document([{"value": "migStrategy=mixed"}]))
    assert merged == {"migStrategy": "mixed", "gfd": {"enabled": True, "sleepInterval": "60s"}}
    assert merge_user_values([{"a": {"b": 1}}, {"a": None}]) == {"a": None}, "null is kept: it deletes the chart default"


def test_unreadable_or_non_mapping_values_files(tmp_path: Path):
    with pytest.raises(HelmValuesError, match="values_files: cannot read"):
        read_values_files(["missing.yml"], str(tmp_path), parse_yaml_document)
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(HelmError, match="values file .*list.yml: expected a mapping"):
        read_values_files(["list.yml"], str(tmp_path), parse_yaml_document)


def test_relative_local_chart_refs_resolve_against_the_playbook_dir(tmp_path: Path):
    (tmp_path / "tests" / "charts" / "nvidia-device-plugin").mkdir(parents=True)
    base = str(tmp_path)
    assert resolve_chart_ref("tests/charts/nvidia-device-plugin", None, base) == str(tmp_path / "tests/charts/nvidia-device-plugin")
    assert resolve_chart_ref("nvdp/nvidia-device-plugin", None, base) == "nvdp/nvidia-device-plugin", "an added repo's chart"
    assert resolve_chart_ref("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", base) == "nvidia-device-plugin"
    assert resolve_chart_ref("oci://registry.example/charts/x", None, base) == "oci://registry.example/charts/x"
    assert resolve_chart_ref("tests/charts/nvidia-device-plugin", None, None) == "tests/charts/nvidia-device-plugin"
