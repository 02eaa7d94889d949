"""The nvidia-smi stand-in: the subset of nvidia-smi the product and its operators use.

Answers from the node state named by GPUFLEET_SIM_STATE through the same semantic core as
the fake libnvidia-ml (``core.Node``); injected faults on the NVML call behind an action
(for example ``nvmlDeviceCreateGpuInstance`` behind ``mig -cgi``) apply here too.

Supported: ``-L``, ``--query-gpu=... --format=csv[,noheader][,nounits]``, ``-r/--gpu-reset``,
``-mig 0|1``, ``mig -lgip | -lgipp | -lgi | -lci | -cgi <list> [-C] | [-gi ..] -cci [<list>] | -dci [-gi ..] [-ci ..] | -dgi [-gi ..]``,
``--version``, each with ``-i``; no argument prints a short summary table.  Messages follow the
captures quoted in shared/reference/mig-hardware.md 7 and the MIG User Guide; exit codes follow
nvidia-smi's (the NVML code for codes up to 21, 255 otherwise).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from . import errors
from .core import MIG_ENABLE, Node
from .errors import NvmlCallError, error_string
from .hardware import GpuInstanceProfile, default_ci_profile
from .state import locked_state

NO_DRIVER_MESSAGE = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running."
)
NO_LIBRARY_MESSAGE = (
    "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that "
    "the NVIDIA Display Driver is properly installed and present in your system.\n"
    "Please also try adding directory that contains libnvidia-ml.so to your system PATH."
)
BUSY_FOR_MODE = (
    "{bus} is currently being used by one or more other processes (e.g. CUDA application or a "
    "monitoring application such as another instance of nvidia-smi). Please first kill all "
    "processes using the device and retry the command or reboot the system to make MIG mode effective."
)
BUSY_FOR_RESET = (
    "{count} {devices} currently being used by one or more other processes (e.g., Fabric Manager, "
    "CUDA application, graphics application such as an X server, or a monitoring application such "
    "as another instance of nvidia-smi). Please first kill all processes using this device and all "
    "compute applications running in the system."
)
# Printed after "Enabled/Disabled MIG Mode for GPU <bus>" and a blank line when persistence mode is
# off (public captures on 515.86.01 and later drivers).
PERSISTENCE_WARNING = (
    "Warning: persistence mode is disabled on device {bus}. See the Known Issues section of the "
    "nvidia-smi(1) man page for more information. Run with [--help | -h] switch to get more "
    "information on how to enable persistence mode."
)
INVALID_ARGUMENTS = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help."

EXIT_INVALID = errors.ERROR_CODES["INVALID_ARGUMENT"]
EXIT_NOT_FOUND = errors.ERROR_CODES["NOT_FOUND"]
EXIT_OTHER = 255


def exit_code_for(code: int) -> int:
    return code if 0 < code <= 21 else EXIT_OTHER


class UsageError(Exception):
    pass


class _Output:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, line: str = "") -> None:
        self.out.write(line + "\n")


# ------------------------------------------------------------------ argument parsing
def _split_args(argv: list[str]) -> dict[str, Any]:
    """nvidia-smi's flags, in the forms nvidia-smi accepts (``-i 0``, ``--id=0``)."""
    parsed: dict[str, Any] = {"mig_subcommand": False}
    args = list(argv)
    if args and args[0] == "mig":
        parsed["mig_subcommand"] = True
        args = args[1:]
    position = 0

    def value_of(flag: str) -> str:
        nonlocal position
        if "=" in args[position]:
            return args[position].split("=", 1)[1]
        position += 1
        if position >= len(args):
            raise UsageError(f"{flag} needs a value")
        return args[position]

    while position < len(args):
        arg = args[position]
        name = arg.split("=", 1)[0]
        if name in ("-i", "--id"):
            parsed["targets"] = value_of(name)
        elif name in ("-L", "--list-gpus"):
            parsed["list"] = True
        elif name in ("--version",):
            parsed["version"] = True
        elif name in ("-r", "--gpu-reset"):
            parsed["reset"] = True
        elif name in ("-mig", "--multi-instance-gpu"):
            parsed["mig_mode"] = value_of(name)
        elif name.startswith("--query-gpu"):
            parsed["query"] = value_of("--query-gpu")
        elif name.startswith("--format"):
            parsed["format"] = value_of("--format")
        elif parsed["mig_subcommand"] and name in ("-lgip", "--list-gpu-instance-profiles"):
            parsed["action"] = "lgip"
        elif parsed["mig_subcommand"] and name in ("-lgipp", "--list-gpu-instance-possible-placements"):
            parsed["action"] = "lgipp"
        elif parsed["mig_subcommand"] and name in ("-lgi", "--list-gpu-instances"):
            parsed["action"] = "lgi"
        elif parsed["mig_subcommand"] and name in ("-lci", "--list-compute-instances"):
            parsed["action"] = "lci"
        elif parsed["mig_subcommand"] and name in ("-cgi", "--create-gpu-instance"):
            parsed["action"] = "cgi"
            parsed["profiles"] = value_of(name)
        elif parsed["mig_subcommand"] and name in ("-cci", "--create-compute-instance"):
            parsed["action"] = "cci"
            following = args[position + 1] if position + 1 < len(args) else None
            if following is not None and not following.startswith("-"):
                parsed["ci_profiles"] = following
                position += 1
        elif parsed["mig_subcommand"] and name in ("-C", "--default-compute-instance"):
            parsed["default_ci"] = True
        elif parsed["mig_subcommand"] and name in ("-dci", "--destroy-compute-instance"):
            parsed["action"] = "dci"
        elif parsed["mig_subcommand"] and name in ("-dgi", "--destroy-gpu-instance"):
            parsed["action"] = "dgi"
        elif parsed["mig_subcommand"] and name in ("-gi", "--gpu-instance-id"):
            parsed["gi_ids"] = value_of(name)
        elif parsed["mig_subcommand"] and name in ("-ci", "--compute-instance-id"):
            parsed["ci_ids"] = value_of(name)
        else:
            raise UsageError(f"unknown option {arg}")
        position += 1
    return parsed


def _id_list(text: str | None) -> set[int] | None:
    if text is None:
        return None
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise UsageError(f"not a list of ids: {text}") from None


def _select_gpus(node: Node, targets: str | None) -> list[int]:
    if targets is None:
        return list(range(len(node.gpus)))
    chosen = []
    for token in (part.strip() for part in targets.split(",")):
        for index, gpu in enumerate(node.gpus):
            if token in (str(index), gpu["uuid"], gpu["pci_bus_id"], gpu["pci_bus_id"][4:]):
                chosen.append(index)
                break
        else:
            raise LookupError(token)
    return chosen


# ------------------------------------------------------------------------ commands
def _version(node: Node, say: _Output) -> int:
    driver = node.installed_driver()
    cuda = driver.cuda_version
    nvml_short = ".".join(driver.version.split(".")[:2])
    say(f"NVIDIA-SMI version  : {driver.version}")
    say(f"NVML version        : {nvml_short}")
    say(f"DRIVER version      : {driver.version}")
    say(f"CUDA Version        : {cuda // 1000}.{(cuda % 1000) // 10}")
    return 0


def _list_gpus(node: Node, gpus: list[int], say: _Output) -> int:
    for index in gpus:
        say(f"GPU {index}: {node.gpu_name(index)} (UUID: {node.gpu(index)['uuid']})")
        for mig_index, (gi, ci) in enumerate(node.mig_devices(index)):
            profile = node.mig_profile_name(index, gi["id"], ci["id"])
            uuid = node.mig_uuid(index, gi["id"], ci["id"])
            say(f"  MIG {profile:<11} Device {mig_index:>2}: (UUID: {uuid})")
    return 0


def _mig_mode_text(node: Node, index: int, pending: bool) -> str:
    if node.model(index).mig is None:
        return "[N/A]"
    mode = node.gpu(index)["mig_pending" if pending else "mig_current"]
    return "Enabled" if mode == MIG_ENABLE else "Disabled"


_QUERY_FIELDS: dict[str, tuple[str, Callable[[Node, int], str]]] = {
    "index": ("", lambda node, i: str(i)),
    "count": ("", lambda node, i: str(len(node.gpus))),
    "name": ("", lambda node, i: node.gpu_name(i)),
    "gpu_name": ("", lambda node, i: node.gpu_name(i)),
    "uuid": ("", lambda node, i: node.gpu(i)["uuid"]),
    "gpu_uuid": ("", lambda node, i: node.gpu(i)["uuid"]),
    "pci.bus_id": ("", lambda node, i: node.gpu(i)["pci_bus_id"]),
    "gpu_bus_id": ("", lambda node, i: node.gpu(i)["pci_bus_id"]),
    "driver_version": ("", lambda node, i: node.installed_driver().version),
    "compute_cap": ("", lambda node, i: "%d.%d" % node.model(i).compute_capability),
    "mig.mode.current": ("", lambda node, i: _mig_mode_text(node, i, pending=False)),
    "mig.mode.pending": ("", lambda node, i: _mig_mode_text(node, i, pending=True)),
    "memory.total": ("MiB", lambda node, i: str(node.memory_mib(i)[0])),
    "memory.used": ("MiB", lambda node, i: str(node.memory_mib(i)[1])),
    "memory.free": ("MiB", lambda node, i: str(node.memory_mib(i)[0] - node.memory_mib(i)[1])),
}


def _query(node: Node, gpus: list[int], fields_text: str, format_text: str | None, say: _Output) -> int:
    fields = [field.strip() for field in fields_text.split(",") if field.strip()]
    for field in fields:
        if field not in _QUERY_FIELDS:
            say(f'Field "{field}" is not a valid field to query.')
            say()
            return EXIT_INVALID
    options = {option.strip() for option in (format_text or "").split(",")}
    if "csv" not in options:
        say("Use --format=csv with --query-gpu.")
        return EXIT_INVALID
    with_units = "nounits" not in options
    if "noheader" not in options:
        say(", ".join(f"{f} [{_QUERY_FIELDS[f][0]}]" if _QUERY_FIELDS[f][0] else f for f in fields))
    for index in gpus:
        values = []
        for field in fields:
            unit, read = _QUERY_FIELDS[field]
            value = read(node, index)
            values.append(f"{value} {unit}" if unit and with_units and value != "[N/A]" else value)
        say(", ".join(values))
    return 0


def _reset(node: Node, gpus: list[int], say: _Output) -> int:
    busy: list[str] = []
    code = 0
    for index in gpus:
        bus = node.gpu(index)["pci_bus_id"]
        try:
            node.reset_gpu(index)
        except NvmlCallError as failure:
            if failure.code == errors.ERROR_CODES["IN_USE"]:
                busy.append(bus)
                continue
            say(f"Resetting GPU {bus} is not supported.")
            code = exit_code_for(failure.code)
            continue
        say(f"GPU {bus} was successfully reset.")
    if not busy and code == 0:
        say("All done.")  # public captures: "... was successfully reset." then "All done."
    if busy:
        say("The following GPUs could not be reset:")
        for bus in busy:
            say(f"  GPU {bus}: {error_string(errors.ERROR_CODES['IN_USE'])}")
        say()
        devices = "device is" if len(busy) == 1 else "devices are"
        say(BUSY_FOR_RESET.format(count=len(busy), devices=devices))
        code = EXIT_OTHER
    return code


def _set_mig_mode(node: Node, gpus: list[int], mode_text: str, say: _Output) -> int:
    if mode_text not in ("0", "1"):
        say(INVALID_ARGUMENTS)
        return EXIT_INVALID
    mode = int(mode_text)
    word = "enable" if mode == MIG_ENABLE else "disable"
    code = 0
    for index in gpus:
        bus = node.gpu(index)["pci_bus_id"]
        try:
            forced = node.take_fault("nvmlDeviceSetMigMode", index)
            if forced is not None:
                raise NvmlCallError(forced)
            status = node.set_mig_mode(index, mode)
        except NvmlCallError as failure:
            say(f"Unable to {word} MIG Mode for GPU {bus}: {error_string(failure.code)}")
            say("Treating as warning and moving on.")
            code = exit_code_for(failure.code)
            continue
        if status == errors.SUCCESS:
            say(f"{word.capitalize()}d MIG Mode for GPU {bus}")
            if not _persistence_mode(node, index):
                say()
                say(PERSISTENCE_WARNING.format(bus=bus))
        elif status == errors.ERROR_CODES["IN_USE"]:
            say(f"Warning: MIG mode is in pending {word} state for GPU {bus}:{error_string(status)}")
            say(BUSY_FOR_MODE.format(bus=bus))
        else:
            # The User Guide's passthrough capture prints "Not Supported" for this case.
            say(f"Warning: MIG mode is in pending {word} state for GPU {bus}:Not Supported")
            say(f"Reboot the system or try nvidia-smi --gpu-reset to make MIG mode effective on GPU {bus}")
    say("All done.")
    return code


def _persistence_mode(node: Node, index: int) -> bool:
    """On when the GPU spec says so (legacy ``nvidia-smi -pm 1``) or nvidia-persistenced holds it."""
    if node.gpu(index).get("persistence_mode"):
        return True
    return any(client["gpu"] == index and client["name"] == "nvidia-persistenced"
               for client in node.state.get("clients", []))


def _profiles_listable(node: Node, index: int) -> bool:
    if node.model(index).mig is None:
        return False
    return node.mig_enabled(index) or node.installed_driver().has("gi_profiles_listed_with_mig_off")


def _mig_gpus(node: Node, gpus: list[int], explicit: bool) -> list[int]:
    if explicit:
        return gpus
    return [index for index in gpus if node.mig_enabled(index)]


def _table(say: _Output, width: int, title: str, header: list[str], rows: list[list[str]]) -> None:
    rule = "+" + "-" * width + "+"
    say(rule)
    say("|" + f" {title}".ljust(width) + "|")
    for line in header:
        say("|" + line.ljust(width) + "|")
    say("|" + "=" * width + "|")
    for row in rows:
        for line in row:
            say("|" + line.ljust(width) + "|")
        say(rule)


# `mig -lgip` and `-lgi` tables grew two columns in R580, both in the name field: 77/55 columns up
# to R575 (mig-parted#97, gpu-operator#900, DCGM#138 captures), 79/57 from R580 (our 580.159.04
# probe, an A100 on 580.126.09 and an RTX PRO 6000 capture).
WIDE_TABLES_SINCE = 580


def _wide_tables(node: Node) -> bool:
    return node.installed_driver().branch >= WIDE_TABLES_SINCE


def _list_gi_profiles(node: Node, gpus: list[int], say: _Output) -> int:
    """`mig -lgip`: 77 columns up to R575, 79 from R580 (name field 17 -> 19)."""
    extra = 2 if _wide_tables(node) else 0
    rows = []
    for index in gpus:
        for profile in node.mig_capability(index).gi_profiles:
            free = node.gi_remaining_capacity(index, profile.id)
            memory = f"{profile.memory_mib / 1024:.2f}"
            rows.append(
                [
                    f"{index:>4}  {'MIG ' + profile.name:<{17 + extra}}{profile.id:>3}{free:>6}/{profile.instance_count:<2}"
                    f"{'':7}{memory:<11}{'No':<7}{profile.multiprocessors:<7}{profile.decoders:<6}{profile.encoders:<4}",
                    " " * (60 + extra) + f"{profile.copy_engines:>2}{'':5}{profile.jpegs:<6}{profile.ofas:<4}",
                ]
            )
    pad = " " * extra
    _table(
        say,
        77 + extra,
        "GPU instance profiles:",
        [
            f" GPU   Name             {pad}ID    Instances   Memory     P2P    SM    DEC   ENC",
            f"                              {pad}Free/Total   GiB              CE    JPEG  OFA",
        ],
        rows,
    )
    return 0


def _list_gi_placements(node: Node, gpus: list[int], say: _Output) -> int:
    """`mig -lgipp` (format captured on 580.159.04)."""
    for index in gpus:
        for profile in node.mig_capability(index).gi_profiles:
            starts = ",".join(str(start) for start, _ in profile.placements)
            label = "Placements:" if len(profile.placements) > 1 else "Placement :"
            say(f"GPU {index:>2} Profile ID {profile.id:>2} {label} {{{starts}}}:{profile.placement_size}")
    return 0


def _ordered_gpu_instances(node: Node, index: int) -> list[dict[str, Any]]:
    # nvidia-smi lists GIs profile by profile (in -lgip order), ids ascending (hw 4.2 listings).
    order = {profile.id: rank for rank, profile in enumerate(node.mig_capability(index).gi_profiles)}
    return sorted(node.gpu_instances(index), key=lambda gi: (order[gi["profile_id"]], gi["id"]))


def _list_gpu_instances(node: Node, gpus: list[int], say: _Output) -> int:
    """`mig -lgi`: 55 columns up to R575 (DCGM#138), 57 from R580 (580.126.09 capture)."""
    extra = 2 if _wide_tables(node) else 0
    rows = []
    for index in gpus:
        for gi in _ordered_gpu_instances(node, index):
            profile = node.gi_profile_of(index, gi)
            placement = "{}:{}".format(*gi["placement"])
            rows.append(
                [f"{index:>4}  MIG {profile.name:<{15 + extra}}{profile.id:>3}{gi['id']:>9}{'':10}{placement:<8}"]
            )
    if not rows:
        say("No GPU instances found.")
        return 0
    pad = " " * extra
    _table(
        say,
        55 + extra,
        "GPU instances:",
        [
            f" GPU   Name             {pad}Profile  Instance   Placement",
            f"                          {pad}ID       ID       Start:Size",
        ],
        rows,
    )
    return 0


def _list_compute_instances(node: Node, gpus: list[int], gi_ids: set[int] | None, say: _Output) -> int:
    """`mig -lci`, 68 columns on every branch captured (R515 to R580).

    Rows by compute profile id, then GPU instance in `-lgi` order, then CI id: an A100 on 580.126.09
    listed (GI 9, 1g.5gb, profile 0), (GI 3, 1c.2g.10gb, profile 0) x2, then (GI 2, 4g.20gb, profile 3).
    """
    entries = []
    for index in gpus:
        for gi_rank, gi in enumerate(_ordered_gpu_instances(node, index)):
            if gi_ids is not None and gi["id"] not in gi_ids:
                continue
            for ci in node.compute_instances(index, gi["id"]):
                profile = node.ci_profile_of(index, gi["id"], ci)
                placement = "{}:{}".format(*ci["placement"])
                line = (f"{index:>4}{gi['id']:>7}{'':7}{'MIG ' + profile.name:<19}{profile.id:>3}"
                        f"{ci['id']:>10}{'':10}{placement:<8}")
                entries.append(((index, profile.id, gi_rank, ci["id"]), line))
    if not entries:
        say("No compute instances found.")
        return 0
    _table(
        say,
        68,
        "Compute instances:",
        [
            " GPU     GPU       Name             Profile   Instance   Placement",
            "       Instance                       ID        ID       Start:Size",
            "         ID",
        ],
        [[line] for _, line in sorted(entries, key=lambda entry: entry[0])],
    )
    return 0


def _resolve_profile(node: Node, index: int, token: str) -> tuple[GpuInstanceProfile | None, int | None]:
    text, _, start = token.partition(":")
    text = text.strip()
    capability = node.mig_capability(index)
    profile = capability.profile_by_id(int(text)) if text.isdigit() else capability.profile_by_name(text)
    return profile, (int(start) if start.strip().isdigit() else None)


def _create_gpu_instances(node: Node, gpus: list[int], profiles_text: str, with_ci: bool, say: _Output) -> int:
    tokens = [token.strip() for token in profiles_text.split(",") if token.strip()]
    for index in gpus:
        for token in tokens:
            requested = token.partition(":")[0].strip()
            try:
                profile, start = _resolve_profile(node, index, token)
                if profile is None:
                    raise NvmlCallError(errors.ERROR_CODES["INVALID_ARGUMENT"])
                symbol = "nvmlDeviceCreateGpuInstance" if start is None else "nvmlDeviceCreateGpuInstanceWithPlacement"
                forced = node.take_fault(symbol, index)
                if forced is not None:
                    raise NvmlCallError(forced)
                placement = None
                if start is not None:
                    placement = (start, profile.placement_size)
                gi = node.create_gpu_instance(index, profile.id, placement)
            except NvmlCallError as failure:
                reason = error_string(failure.code)
                say(f"Unable to create a GPU instance on GPU {index} using profile {requested}: {reason}")
                say(f"Failed to create GPU instances: {reason}")
                return exit_code_for(failure.code)
            say(
                f"Successfully created GPU instance ID {gi['id']:>2} on GPU {index:>2} "
                f"using profile MIG {profile.name} (ID {profile.id:>2})"
            )
            if with_ci:
                ci_profile = default_ci_profile(profile)
                try:
                    forced = node.take_fault("nvmlGpuInstanceCreateComputeInstance", index)
                    if forced is not None:
                        raise NvmlCallError(forced)
                    ci = node.create_compute_instance(index, gi["id"], ci_profile.index)
                except NvmlCallError as failure:
                    reason = error_string(failure.code)
                    say(
                        f"Unable to create a compute instance on GPU {index:>2} GPU instance ID {gi['id']:>2} "
                        f"using profile {ci_profile.index}: {reason}"
                    )
                    say(f"Failed to create compute instances: {reason}")
                    return exit_code_for(failure.code)
                say(
                    f"Successfully created compute instance ID {ci['id']:>2} on GPU {index:>2} GPU instance ID "
                    f"{gi['id']:>2} using profile MIG {ci_profile.name} (ID {ci_profile.index:>2})"
                )
    return 0


def _create_compute_instances(
    node: Node, gpus: list[int], gi_ids: set[int] | None, profiles_text: str | None, say: _Output
) -> int:
    """`mig [-gi ..] -cci [ids or names]`: the listed CI profiles in each GI, else its default CI."""
    for index in gpus:
        for gi in _ordered_gpu_instances(node, index):
            if gi_ids is not None and gi["id"] not in gi_ids:
                continue
            available = node.ci_profiles(index, gi["id"])
            if profiles_text is None:
                wanted = [default_ci_profile(node.gi_profile_of(index, gi))]
            else:
                wanted = []
                for token in (part.strip() for part in profiles_text.split(",") if part.strip()):
                    name = token[4:] if token.upper().startswith("MIG ") else token
                    match = next((p for p in available if str(p.id) == token or p.name == name), None)
                    if match is None:
                        say(f"Unable to create a compute instance on GPU {index:>2} GPU instance ID {gi['id']:>2} "
                            f"using profile {token}: {error_string(errors.ERROR_CODES['NOT_SUPPORTED'])}")
                        return exit_code_for(errors.ERROR_CODES["NOT_SUPPORTED"])
                    wanted.append(match)
            for ci_profile in wanted:
                try:
                    forced = node.take_fault("nvmlGpuInstanceCreateComputeInstance", index)
                    if forced is not None:
                        raise NvmlCallError(forced)
                    ci = node.create_compute_instance(index, gi["id"], ci_profile.index)
                except NvmlCallError as failure:
                    reason = error_string(failure.code)
                    say(f"Unable to create a compute instance on GPU {index:>2} GPU instance ID {gi['id']:>2} "
                        f"using profile {ci_profile.index}: {reason}")
                    say(f"Failed to create compute instances: {reason}")
                    return exit_code_for(failure.code)
                say(f"Successfully created compute instance ID {ci['id']:>2} on GPU {index:>2} GPU instance ID "
                    f"{gi['id']:>2} using profile MIG {ci_profile.name} (ID {ci_profile.index:>2})")
    return 0


def _destroy_compute_instances(
    node: Node, gpus: list[int], gi_ids: set[int] | None, ci_ids: set[int] | None, say: _Output
) -> int:
    failure_code = None
    destroyed_any = False
    for index in gpus:
        for gi in node.gpu_instances(index):
            if gi_ids is not None and gi["id"] not in gi_ids:
                continue
            for ci in node.compute_instances(index, gi["id"]):
                if ci_ids is not None and ci["id"] not in ci_ids:
                    continue
                destroyed_any = True
                try:
                    forced = node.take_fault("nvmlComputeInstanceDestroy", index)
                    if forced is not None:
                        raise NvmlCallError(forced)
                    node.destroy_compute_instance(index, gi["id"], ci["id"])
                except NvmlCallError as failure:
                    failure_code = failure.code
                    say(
                        f"Unable to destroy compute instance ID {ci['id']:>2} from GPU {index:>2} GPU instance ID "
                        f"{gi['id']:>2}: {error_string(failure.code)}"
                    )
                    continue
                say(
                    f"Successfully destroyed compute instance ID {ci['id']:>2} from GPU {index:>2} "
                    f"GPU instance ID {gi['id']:>2}"
                )
    if not destroyed_any:
        say("No compute instances found.")
        return EXIT_NOT_FOUND
    if failure_code is not None:
        say(f"Failed to destroy compute instances: {error_string(failure_code)}")
        return exit_code_for(failure_code)
    return 0


def _destroy_gpu_instances(node: Node, gpus: list[int], gi_ids: set[int] | None, say: _Output) -> int:
    failure_code = None
    destroyed_any = False
    for index in gpus:
        for gi in node.gpu_instances(index):
            if gi_ids is not None and gi["id"] not in gi_ids:
                continue
            destroyed_any = True
            try:
                forced = node.take_fault("nvmlGpuInstanceDestroy", index)
                if forced is not None:
                    raise NvmlCallError(forced)
                node.destroy_gpu_instance(index, gi["id"])
            except NvmlCallError as failure:
                failure_code = failure.code
                say(f"Unable to destroy GPU instance ID {gi['id']:>2} from GPU {index:>2}: {error_string(failure.code)}")
                continue
            say(f"Successfully destroyed GPU instance ID {gi['id']:>2} from GPU {index:>2}")
    if not destroyed_any:
        say("No GPU instances found.")
        return EXIT_NOT_FOUND
    if failure_code is not None:
        say(f"Failed to destroy GPU instances: {error_string(failure_code)}")
        return exit_code_for(failure_code)
    return 0


def _summary(node: Node, gpus: list[int], say: _Output) -> int:
    """A short version of nvidia-smi's default table."""
    driver = node.installed_driver()
    cuda = f"{driver.cuda_version // 1000}.{(driver.cuda_version % 1000) // 10}"
    say(f"NVIDIA-SMI {driver.version}    Driver Version: {driver.version}    CUDA Version: {cuda}")
    for index in gpus:
        total, used = node.memory_mib(index)
        say(
            f"GPU {index}  {node.gpu_name(index):<24} {node.gpu(index)['pci_bus_id']}  "
            f"{used}MiB / {total}MiB  MIG: {_mig_mode_text(node, index, pending=False)}"
        )
        for mig_index, (gi, ci) in enumerate(node.mig_devices(index)):
            gi_total, gi_used = node.memory_mib(index, gi["id"])
            say(f"  GI {gi['id']:>2} CI {ci['id']} MIG device {mig_index}: {gi_used}MiB / {gi_total}MiB")
    processes = [p for p in node.state["processes"] if p["gpu"] in gpus]
    if not processes:
        say("No running processes found")
    for process in processes:
        gi = "N/A" if process.get("gi") is None else process["gi"]
        ci = "N/A" if process.get("ci") is None else process["ci"]
        say(
            f"Process {process['pid']} {process['name']} GPU {process['gpu']} GI {gi} CI {ci} "
            f"{process['used_memory_mib']}MiB"
        )
    return 0


# ----------------------------------------------------------------------------- main
def run(argv: list[str], state_path: str | None, out: TextIO) -> int:
    say = _Output(out)
    if not state_path:
        say(NO_DRIVER_MESSAGE)
        return errors.ERROR_CODES["DRIVER_NOT_LOADED"]
    try:
        parsed = _split_args(argv)
    except UsageError:
        say(INVALID_ARGUMENTS)
        return EXIT_INVALID
    with locked_state(state_path) as state:
        node = Node(state)
        if not state.get("nvml_library", True):
            say(NO_LIBRARY_MESSAGE)
            return errors.ERROR_CODES["LIBRARY_NOT_FOUND"]
        if not node.driver_usable:
            say(NO_DRIVER_MESSAGE)
            return errors.ERROR_CODES["DRIVER_NOT_LOADED"]
        try:
            gpus = _select_gpus(node, parsed.get("targets"))
        except LookupError:
            if parsed.get("list"):
                # Observed on 580.159.04 for `-i 7 -L` on a one-GPU node.  A GPU that exists is
                # listed (`nvidia-smi -i 0 -L`, audit: captures).
                say("ERROR: Option -i is not valid for this command. Please run 'nvidia-smi -h' for help.")
                say()
                return EXIT_INVALID
            say("No devices were found")
            return EXIT_NOT_FOUND
        return _dispatch(node, parsed, gpus, say)


def _dispatch(node: Node, parsed: dict[str, Any], gpus: list[int], say: _Output) -> int:
    explicit = "targets" in parsed
    try:
        if parsed["mig_subcommand"]:
            action = parsed.get("action")
            if action is None:
                say(INVALID_ARGUMENTS)
                return EXIT_INVALID
            if action in ("lgip", "lgipp"):
                # Drivers that answer profile queries with MIG off list the profiles then too
                # (observed: 580.159.04 prints -lgip for an H200 in MIG-disabled mode).
                listable = [index for index in gpus if _profiles_listable(node, index)]
                if not listable:
                    say("No MIG-enabled devices found.")
                    return 0
                lister = _list_gi_profiles if action == "lgip" else _list_gi_placements
                return lister(node, listable, say)
            mig_gpus = _mig_gpus(node, gpus, explicit)
            enabled = [index for index in mig_gpus if node.mig_enabled(index)]
            if action in ("lgi", "lci") and not enabled:
                say("No MIG-enabled devices found.")
                return 0
            if not mig_gpus:
                say("No MIG-enabled devices found.")
                return EXIT_NOT_FOUND
            if action == "lgi":
                return _list_gpu_instances(node, enabled, say)
            if action == "lci":
                return _list_compute_instances(node, enabled, _id_list(parsed.get("gi_ids")), say)
            if action == "cgi":
                return _create_gpu_instances(node, mig_gpus, parsed["profiles"], parsed.get("default_ci", False), say)
            if action == "cci":
                return _create_compute_instances(
                    node, enabled, _id_list(parsed.get("gi_ids")), parsed.get("ci_profiles"), say
                )
            if action == "dci":
                return _destroy_compute_instances(
                    node, mig_gpus, _id_list(parsed.get("gi_ids")), _id_list(parsed.get("ci_ids")), say
                )
            return _destroy_gpu_instances(node, mig_gpus, _id_list(parsed.get("gi_ids")), say)
        if parsed.get("version"):
            return _version(node, say)
        if parsed.get("list"):
            return _list_gpus(node, gpus, say)
        if "query" in parsed:
            return _query(node, gpus, parsed["query"], parsed.get("format"), say)
        if parsed.get("reset"):
            return _reset(node, gpus, say)
        if "mig_mode" in parsed:
            return _set_mig_mode(node, gpus, parsed["mig_mode"], say)
        return _summary(node, gpus, say)
    except UsageError:
        say(INVALID_ARGUMENTS)
        return EXIT_INVALID
    except NvmlCallError as failure:
        # e.g. MIG listing on a GPU whose driver/model has no MIG.
        say(f"Failed: {error_string(failure.code)}")
        return exit_code_for(failure.code)


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv, os.environ.get("GPUFLEET_SIM_STATE"), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
