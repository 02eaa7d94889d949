"""Host facts: a GPU process's owner from its cgroup in /proc (a pod's container, or the host's)."""
from __future__ import annotations

from ansible_collections.gpufleet.mig.plugins.module_utils._host_processes import (
    annotate_process_owners, cgroup_paths, owner_of_cgroups, read_process_owner,
)


def test_cgroup_v1_and_v2_lines_give_their_paths():
    text = "12:memory:/kubepods/burstable/pod1234/abcd\n0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope\n"
    assert cgroup_paths(text) == ["/kubepods/burstable/pod1234/abcd", "/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope"]


def test_a_path_below_kubepods_is_a_pods_and_anything_else_the_hosts():
    assert owner_of_cgroups(["/kubepods/burstable/pod1234/abcd"]) == "pod"  # cgroupfs driver
    assert owner_of_cgroups(["/kubepods.slice/kubepods-besteffort.slice/x.scope"]) == "pod"  # systemd driver
    assert owner_of_cgroups(["/system.slice/trainer.service"]) == "host"
    assert owner_of_cgroups(["/user.slice/user-1000.slice/session-3.scope"]) == "host"
    assert owner_of_cgroups(["/system.slice/my-kubepodsish"]) == "host"  # a path component must start with kubepods
    assert owner_of_cgroups([]) == "host"


def test_processes_are_read_from_the_proc_root(tmp_path):
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "cgroup").write_text("0::/system.slice/trainer.service\n")
    (tmp_path / "11").mkdir()  # a process whose cgroup cannot be read
    facts = {"gpus": [{"processes": [{"pid": 10}, {"pid": 11}, {"pid": 12}]}]}

    annotate_process_owners(facts, str(tmp_path))

    assert facts["gpus"][0]["processes"] == [
        {"pid": 10, "owner": "host", "cgroup": "/system.slice/trainer.service"},
        {"pid": 11, "owner": "unknown", "cgroup": None},
        {"pid": 12, "owner": "gone", "cgroup": None},
    ]
    assert read_process_owner(12, str(tmp_path)) == {"owner": "gone", "cgroup": None}


def test_without_a_proc_root_the_records_stay_as_they_are():
    facts = {"gpus": [{"processes": [{"pid": 10}]}]}
    assert annotate_process_owners(facts, None) == {"gpus": [{"processes": [{"pid": 10}]}]}
