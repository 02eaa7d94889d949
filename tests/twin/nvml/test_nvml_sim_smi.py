"""The nvidia-smi stand-in: output wording and exit codes (hw 7, User Guide captures)."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from gpufleet_twin import nvml as sim
from gpufleet_twin.nvml import smi
from nvml_sim_helpers import SEED_GPU_UUID

SEED_BUS = "00000000:36:00.0"


def run_smi(path, *argv):
    out = io.StringIO()
    code = smi.run(list(argv), str(path), out)
    return code, out.getvalue()


@pytest.fixture
def seed_node(make_node):
    # The seed's `-mig 1` printed no persistence-mode warning: persistence mode was on.
    return make_node(
        [{"model": "A100-SXM4-40GB", "uuid": SEED_GPU_UUID, "pci_bus_id": SEED_BUS, "persistence_mode": True}],
        driver_version="450.80.02",
    )


def test_seed_walkthrough(seed_node):
    """The seed's commands on 450.80.02, from MIG off to three MIG devices."""
    assert run_smi(seed_node, "-L") == (0, f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n")
    assert run_smi(seed_node, "-mig", "1") == (0, f"Enabled MIG Mode for GPU {SEED_BUS}\nAll done.\n")
    assert run_smi(seed_node, "--query-gpu=mig.mode.current", "--format=csv,noheader") == (0, "Enabled\n")
    code, out = run_smi(seed_node, "mig", "-cgi", "9,14,19", "-C")
    assert code == 0
    assert out.splitlines() == [
        "Successfully created GPU instance ID  2 on GPU  0 using profile MIG 3g.20gb (ID  9)",
        "Successfully created compute instance ID  0 on GPU  0 GPU instance ID  2 using profile MIG 3g.20gb (ID  2)",
        "Successfully created GPU instance ID  3 on GPU  0 using profile MIG 2g.10gb (ID 14)",
        "Successfully created compute instance ID  0 on GPU  0 GPU instance ID  3 using profile MIG 2g.10gb (ID  1)",
        "Successfully created GPU instance ID  9 on GPU  0 using profile MIG 1g.5gb (ID 19)",
        "Successfully created compute instance ID  0 on GPU  0 GPU instance ID  9 using profile MIG 1g.5gb (ID  0)",
    ]
    assert run_smi(seed_node, "-L") == (
        0,
        (
            f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n"
            f"  MIG 3g.20gb     Device  0: (UUID: MIG-{SEED_GPU_UUID}/2/0)\n"
            f"  MIG 2g.10gb     Device  1: (UUID: MIG-{SEED_GPU_UUID}/3/0)\n"
            f"  MIG 1g.5gb      Device  2: (UUID: MIG-{SEED_GPU_UUID}/9/0)\n"
        ),
    )


def test_query_gpu_csv_with_and_without_units(seed_node):
    fields = "index,name,uuid,pci.bus_id,driver_version,mig.mode.current,mig.mode.pending,memory.total"
    code, out = run_smi(seed_node, f"--query-gpu={fields}", "--format=csv")
    assert code == 0
    assert out.splitlines() == [
        "index, name, uuid, pci.bus_id, driver_version, mig.mode.current, mig.mode.pending, memory.total [MiB]",
        f"0, A100-SXM4-40GB, {SEED_GPU_UUID}, {SEED_BUS}, 450.80.02, Disabled, Disabled, 40537 MiB",
    ]
    code, out = run_smi(seed_node, "--query-gpu=memory.total,mig.mode.pending", "--format=csv,noheader,nounits")
    assert (code, out) == (0, "40537, Disabled\n")
    code, out = run_smi(seed_node, "--query-gpu=temperature.weird", "--format=csv")
    assert (code, out) == (2, 'Field "temperature.weird" is not a valid field to query.\n\n')


def test_query_on_a_gpu_without_mig_prints_na(make_node):
    path = make_node([{"model": "Tesla-T4"}])
    assert run_smi(path, "--query-gpu=name,mig.mode.current", "--format=csv,noheader") == (0, "Tesla T4, [N/A]\n")


def test_wrong_order_fails_like_the_user_guide(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    code, out = run_smi(path, "mig", "-cgi", "19,19,14,9")
    assert code != 0
    assert out.splitlines() == [
        "Successfully created GPU instance ID 13 on GPU  0 using profile MIG 1g.5gb (ID 19)",
        "Successfully created GPU instance ID 11 on GPU  0 using profile MIG 1g.5gb (ID 19)",
        "Successfully created GPU instance ID  3 on GPU  0 using profile MIG 2g.10gb (ID 14)",
        "Unable to create a GPU instance on GPU 0 using profile 9: Insufficient Resources",
        "Failed to create GPU instances: Insufficient Resources",
    ]
    assert len(sim.node_status(path)["gpus"][0]["gpu_instances"]) == 3


def test_names_full_names_and_placements_in_cgi(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    code, out = run_smi(path, "mig", "-cgi", "3g.20gb,MIG 3g.20gb")
    assert code == 0 and "GPU instance ID  2" in out.splitlines()[0] and "GPU instance ID  1" in out.splitlines()[1]
    run_smi(path, "mig", "-dgi")
    code, out = run_smi(path, "mig", "-cgi", "14:2")
    assert (code, out) == (0, "Successfully created GPU instance ID  4 on GPU  0 using profile MIG 2g.10gb (ID 14)\n")


def test_list_gpu_instances_in_profile_order(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version="550.54.15")
    assert run_smi(path, "mig", "-lgi") == (0, "No GPU instances found.\n")
    run_smi(path, "mig", "-cgi", "9,19,14,19")
    code, out = run_smi(path, "mig", "-lgi")
    rows = [line.split() for line in out.splitlines() if line.startswith("|   0")]
    assert [tuple(row[3:7]) for row in rows] == [
        ("1g.5gb", "19", "7", "0:1"),
        ("1g.5gb", "19", "8", "1:1"),
        ("2g.10gb", "14", "4", "2:2"),
        ("3g.20gb", "9", "2", "4:4"),
    ]


def test_list_gpu_instance_profiles_shows_free_counts(make_node):
    path = make_node(
        [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["4g.20gb"]}], driver_version="580.126.09"
    )
    code, out = run_smi(path, "mig", "-lgip")
    assert code == 0
    rows = {line.split()[3]: line.split()[4:6] for line in out.splitlines() if line.startswith("|   0  MIG")}
    assert rows == {
        "1g.5gb": ["19", "3/7"],
        "1g.5gb+me": ["20", "1/1"],
        "1g.10gb": ["15", "2/4"],
        "2g.10gb": ["14", "1/3"],
        "3g.20gb": ["9", "1/2"],
        "4g.20gb": ["5", "0/1"],
        "7g.40gb": ["0", "0/1"],
    }
    assert "4.75" in out and "39.38" in out


def test_mig_listing_with_mig_off(seed_node):
    for action in ("-lgip", "-lgipp", "-lgi", "-lci"):
        assert run_smi(seed_node, "mig", action) == (0, "No MIG-enabled devices found.\n")


# Captured from nvidia-smi 580.159.04 on an H200 with MIG disabled (read-only probe).
H200_580_LGIP = """\
+-------------------------------------------------------------------------------+
| GPU instance profiles:                                                        |
| GPU   Name               ID    Instances   Memory     P2P    SM    DEC   ENC  |
|                                Free/Total   GiB              CE    JPEG  OFA  |
|===============================================================================|
|   0  MIG 1g.18gb         19     7/7        16.00      No     16     1     0   |
|                                                               1     1     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 1g.18gb+me      20     1/1        16.00      No     16     1     0   |
|                                                               1     1     1   |
+-------------------------------------------------------------------------------+
|   0  MIG 1g.35gb         15     4/4        32.50      No     26     1     0   |
|                                                               1     1     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 2g.35gb         14     3/3        32.50      No     32     2     0   |
|                                                               2     2     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 3g.71gb          9     2/2        69.75      No     60     3     0   |
|                                                               3     3     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 4g.71gb          5     1/1        69.75      No     64     4     0   |
|                                                               4     4     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 7g.141gb         0     1/1        140.00     No     132    7     0   |
|                                                               8     7     1   |
+-------------------------------------------------------------------------------+
"""
H200_580_LGIPP = """\
GPU  0 Profile ID 19 Placements: {0,1,2,3,4,5,6}:1
GPU  0 Profile ID 20 Placements: {0,1,2,3,4,5,6}:1
GPU  0 Profile ID 15 Placements: {0,2,4,6}:2
GPU  0 Profile ID 14 Placements: {0,2,4}:2
GPU  0 Profile ID  9 Placements: {0,4}:4
GPU  0 Profile ID  5 Placement : {0}:4
GPU  0 Profile ID  0 Placement : {0}:8
"""


def test_h200_on_580_matches_the_captured_listings(make_node):
    path = make_node(
        [{"model": "H200-141GB", "uuid": "GPU-19bcf0bb-def5-ad97-5081-496820ff8ff3", "pci_bus_id": "00000000:00:06.0"}],
        driver_version="580.159.04",
    )
    assert run_smi(path, "mig", "-lgip") == (0, H200_580_LGIP)
    assert run_smi(path, "mig", "-lgipp") == (0, H200_580_LGIPP)
    assert run_smi(path, "mig", "-lgi") == (0, "No MIG-enabled devices found.\n")
    assert run_smi(
        path,
        "--query-gpu=index,name,uuid,pci.bus_id,driver_version,mig.mode.current,mig.mode.pending," "memory.total",
        "--format=csv",
    ) == (
        0,
        (
            "index, name, uuid, pci.bus_id, driver_version, mig.mode.current, mig.mode.pending, memory.total [MiB]\n"
            "0, NVIDIA H200, GPU-19bcf0bb-def5-ad97-5081-496820ff8ff3, 00000000:00:06.0, 580.159.04, Disabled, "
            "Disabled, 143771 MiB\n"
        ),
    )
    assert run_smi(path, "--version") == (
        0,
        (
            "NVIDIA-SMI version  : 580.159.04\nNVML version        : 580.159\n"
            "DRIVER version      : 580.159.04\nCUDA Version        : 13.0\n"
        ),
    )
    assert run_smi(path, "-i", "7", "-L") == (
        2,
        "ERROR: Option -i is not valid for this command. Please run 'nvidia-smi -h' for help.\n\n",
    )


def test_destroy_in_use_reports_and_keeps_going(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["3g.20gb", "3g.20gb"]}])
    sim.add_process(path, 0, 50, "job", 10, gi=1, ci=0)
    code, out = run_smi(path, "mig", "-dci")
    assert code == 19
    assert out.splitlines() == [
        "Unable to destroy compute instance ID  0 from GPU  0 GPU instance ID  1: In use by another client",
        "Successfully destroyed compute instance ID  0 from GPU  0 GPU instance ID  2",
        "Failed to destroy compute instances: In use by another client",
    ]
    code, out = run_smi(path, "mig", "-dgi")
    assert out.splitlines() == [
        "Unable to destroy GPU instance ID  1 from GPU  0: In use by another client",
        "Successfully destroyed GPU instance ID  2 from GPU  0",
        "Failed to destroy GPU instances: In use by another client",
    ]
    assert run_smi(path, "mig", "-dci", "-gi", "2") == (6, "No compute instances found.\n")


def test_enable_while_held_stays_pending_with_the_guide_message(seed_node):
    sim.hold_gpu(seed_node, 0, "nv-hostengine")
    code, out = run_smi(seed_node, "-i", "0", "-mig", "1")
    assert code == 0
    assert out.splitlines() == [
        f"Warning: MIG mode is in pending enable state for GPU {SEED_BUS}:In use by another client",
        f"{SEED_BUS} is currently being used by one or more other processes (e.g. CUDA application or a "
        "monitoring application such as another instance of nvidia-smi). Please first kill all processes "
        "using the device and retry the command or reboot the system to make MIG mode effective.",
        "All done.",
    ]
    assert run_smi(seed_node, "--query-gpu=mig.mode.current,mig.mode.pending", "--format=csv,noheader") == (
        0,
        "Disabled, Enabled\n",
    )


def test_reset_refused_while_held_then_applies_pending_mode(seed_node):
    sim.hold_gpu(seed_node, 0, "nvidia-persistenced")
    run_smi(seed_node, "-mig", "1")
    code, out = run_smi(seed_node, "-r", "-i", "0")
    assert code == 255
    assert out.splitlines()[:3] == [
        "The following GPUs could not be reset:",
        f"  GPU {SEED_BUS}: In use by another client",
        "",
    ]
    assert out.splitlines()[3].startswith("1 device is currently being used by one or more other processes")
    sim.release_gpu(seed_node, 0)
    assert run_smi(seed_node, "--gpu-reset", "-i", SEED_BUS) == (
        0, f"GPU {SEED_BUS} was successfully reset.\nAll done.\n")
    assert run_smi(seed_node, "--query-gpu=mig.mode.current", "--format=csv,noheader") == (0, "Enabled\n")


def test_passthrough_vm_messages(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "pci_bus_id": "00000000:00:03.0"}], passthrough_vm=True)
    code, out = run_smi(path, "-i", "0", "-mig", "1")
    assert out.splitlines() == [
        "Warning: MIG mode is in pending enable state for GPU 00000000:00:03.0:Not Supported",
        "Reboot the system or try nvidia-smi --gpu-reset to make MIG mode effective on GPU 00000000:00:03.0",
        "All done.",
    ]
    assert run_smi(path, "--gpu-reset") == (3, "Resetting GPU 00000000:00:03.0 is not supported.\n")


def test_disable_with_instances_and_non_mig_gpu(make_node):
    path = make_node(
        [{"model": "A100-SXM4-40GB", "mig_mode": "enabled", "mig_devices": ["7g.40gb"]}, {"model": "Tesla-T4"}]
    )
    bus0, bus1 = (gpu["pci_bus_id"] for gpu in sim.node_status(path)["gpus"])
    code, out = run_smi(path, "-mig", "0")
    assert code == 3
    assert out.splitlines() == [
        f"Unable to disable MIG Mode for GPU {bus0}: In use by another client",
        "Treating as warning and moving on.",
        f"Unable to disable MIG Mode for GPU {bus1}: Not Supported",
        "Treating as warning and moving on.",
        "All done.",
    ]


def test_faults_apply_to_the_stand_in_too(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}])
    sim.inject_fault(path, "nvmlDeviceCreateGpuInstance", "NO_PERMISSION")
    code, out = run_smi(path, "mig", "-cgi", "19")
    assert code == 4
    assert out.splitlines()[0] == "Unable to create a GPU instance on GPU 0 using profile 19: Insufficient Permissions"


def test_version_and_bad_arguments(seed_node):
    assert run_smi(seed_node, "--version") == (
        0,
        (
            "NVIDIA-SMI version  : 450.80.02\nNVML version        : 450.80\n"
            "DRIVER version      : 450.80.02\nCUDA Version        : 11.0\n"
        ),
    )
    assert run_smi(seed_node, "--frobnicate")[0] == 2
    assert run_smi(seed_node, "-i", "7", "--query-gpu=name", "--format=csv") == (6, "No devices were found\n")


def test_no_driver_node(make_node):
    path = make_node([{"model": "A100-SXM4-40GB"}], driver_loaded=False)
    code, out = run_smi(path, "-L")
    assert code == 9 and out.startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def test_executable_on_the_node_path(seed_node):
    env = {**os.environ, **sim.node_env(seed_node)}
    result = subprocess.run(["nvidia-smi", "-L"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, f"GPU 0: A100-SXM4-40GB (UUID: {SEED_GPU_UUID})\n")
    unset = {k: v for k, v in env.items() if k != sim.STATE_ENV_VAR}
    result = subprocess.run(["nvidia-smi"], env=unset, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 9


# ----------------------------------------------------------- layouts as captured (issue 8 item 6)
A100_R580_LGI = """\
+---------------------------------------------------------+
| GPU instances:                                          |
| GPU   Name               Profile  Instance   Placement  |
|                            ID       ID       Start:Size |
|=========================================================|
|   0  MIG 1g.5gb            19        9          6:1     |
+---------------------------------------------------------+
|   0  MIG 2g.10gb           14        3          4:2     |
+---------------------------------------------------------+
|   0  MIG 4g.20gb            5        2          0:4     |
+---------------------------------------------------------+
"""


def _a100_r580_transcript_node(make_node):
    """An A100-SXM4-40GB on 580.126.09 after -cgi 4g.20gb, 2g.10gb, 1g.5gb (public transcript)."""
    path = make_node([{"model": "A100-SXM4-40GB", "mig_mode": "enabled"}], driver_version="580.126.09")
    for profile in ("4g.20gb", "2g.10gb", "1g.5gb"):
        assert run_smi(path, "mig", "-i", "0", "-cgi", profile)[0] == 0
    return path


def test_lgi_is_57_columns_from_r580_with_the_captured_ids(make_node):
    path = _a100_r580_transcript_node(make_node)
    assert run_smi(path, "mig", "-i", "0", "-lgi") == (0, A100_R580_LGI)


def test_lci_rows_go_by_compute_profile_then_gpu_instance(make_node):
    path = _a100_r580_transcript_node(make_node)
    assert run_smi(path, "mig", "-i", "0", "-gi", "2", "-cci")[0] == 0
    for _ in range(2):
        assert run_smi(path, "mig", "-i", "0", "-gi", "3", "-cci", "0")[0] == 0
    assert run_smi(path, "mig", "-i", "0", "-gi", "9", "-cci")[0] == 0
    code, out = run_smi(path, "mig", "-i", "0", "-lci")
    assert code == 0
    assert out.splitlines()[6:] == [
        "|   0      9       MIG 1g.5gb           0         0          0:1     |",
        "+--------------------------------------------------------------------+",
        "|   0      3       MIG 1c.2g.10gb       0         0          0:1     |",
        "+--------------------------------------------------------------------+",
        "|   0      3       MIG 1c.2g.10gb       0         1          1:1     |",
        "+--------------------------------------------------------------------+",
        "|   0      2       MIG 4g.20gb          3         0          0:4     |",
        "+--------------------------------------------------------------------+",
    ]


def test_lgi_is_55_columns_before_r580(make_node):
    """DCGM#138 capture (A100-80GB): `|   0  MIG 1g.10gb         19        9          2:1     |`."""
    path = make_node([{"model": "A100-SXM4-80GB", "mig_mode": "enabled", "mig_devices": ["3g.40gb", "2g.20gb"]}],
                     driver_version="535.104.05")
    code, out = run_smi(path, "mig", "-lgi")
    assert code == 0
    lines = out.splitlines()
    assert {len(line) for line in lines} == {57}  # 55 inside the borders
    assert lines[2] == "| GPU   Name             Profile  Instance   Placement  |"
    assert "|   0  MIG 2g.20gb         14        3          0:2     |" in lines


@pytest.mark.parametrize("driver, width", [("535.104.05", 77), ("570.172.08", 77), ("580.65.06", 79)])
def test_lgip_width_per_branch(make_node, driver, width):
    """77 columns up to R575 (mig-parted#97, PR#166), 79 from R580 (probe, 580.126.09 capture)."""
    path = make_node([{"model": "A100-SXM4-80GB", "mig_mode": "enabled"}], driver_version=driver)
    code, out = run_smi(path, "mig", "-lgip")
    assert code == 0
    lines = out.splitlines()
    assert {len(line) for line in lines} == {width + 2}
    if width == 77:
        assert lines[2] == "| GPU   Name             ID    Instances   Memory     P2P    SM    DEC   ENC  |"
        assert lines[5].startswith("|   0  MIG 1g.10gb       19     7/7        9.")
        assert lines[6] == "|" + " " * 61 + "1     0     0   |"


def test_mig_mode_change_warns_when_persistence_mode_is_off(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "pci_bus_id": "00000000:01:00.0"}], driver_version="550.54.15")
    code, out = run_smi(path, "-i", "0", "-mig", "1")
    assert code == 0
    assert out.splitlines() == [
        "Enabled MIG Mode for GPU 00000000:01:00.0",
        "",
        "Warning: persistence mode is disabled on device 00000000:01:00.0. See the Known Issues section of the "
        "nvidia-smi(1) man page for more information. Run with [--help | -h] switch to get more information on "
        "how to enable persistence mode.",
        "All done.",
    ]


def test_list_one_gpu_with_its_mig_devices(make_node):
    path = make_node([{"model": "A100-SXM4-40GB", "count": 2, "mig_mode": "enabled", "mig_devices": ["3g.20gb"]}],
                     driver_version="550.54.15")
    code, out = run_smi(path, "-i", "1", "-L")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("GPU 1: NVIDIA A100-SXM4-40GB (UUID: ")
    assert lines[1].startswith("  MIG 3g.20gb     Device  0: (UUID: MIG-")
