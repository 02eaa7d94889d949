"""NVML return codes and the texts ``nvmlErrorString`` gives for them.

Codes equal the ``NVML_ERROR_*`` constants of nvml.h / pynvml (hw 9).  The simulator keeps its
own table so the nvidia-smi stand-in and the state tools work without importing pynvml.
"""

from __future__ import annotations

SUCCESS = 0

ERROR_CODES: dict[str, int] = {
    "UNINITIALIZED": 1,
    "INVALID_ARGUMENT": 2,
    "NOT_SUPPORTED": 3,
    "NO_PERMISSION": 4,
    "ALREADY_INITIALIZED": 5,
    "NOT_FOUND": 6,
    "INSUFFICIENT_SIZE": 7,
    "INSUFFICIENT_POWER": 8,
    "DRIVER_NOT_LOADED": 9,
    "TIMEOUT": 10,
    "IRQ_ISSUE": 11,
    "LIBRARY_NOT_FOUND": 12,
    "FUNCTION_NOT_FOUND": 13,
    "CORRUPTED_INFOROM": 14,
    "GPU_IS_LOST": 15,
    "RESET_REQUIRED": 16,
    "OPERATING_SYSTEM": 17,
    "LIB_RM_VERSION_MISMATCH": 18,
    "IN_USE": 19,
    "MEMORY": 20,
    "NO_DATA": 21,
    "VGPU_ECC_NOT_SUPPORTED": 22,
    "INSUFFICIENT_RESOURCES": 23,
    "FREQ_NOT_SUPPORTED": 24,
    "ARGUMENT_VERSION_MISMATCH": 25,
    "DEPRECATED": 26,
    "NOT_READY": 27,
    "GPU_NOT_FOUND": 28,
    "INVALID_STATE": 29,
    "RESET_TYPE_NOT_SUPPORTED": 30,
    "UNKNOWN": 999,
}

# Texts that nvidia-smi prints after a colon ("...: Insufficient Resources").  Every entry was
# read from a real libnvidia-ml (nvmlErrorString, driver 580.159.04 on an H200); 19 and 23 also
# appear in the User Guide captures (hw 7, 9).  pynvml's own table overrides some of them in
# str(NVMLError) (e.g. 16 "GPU requires restart").
ERROR_STRINGS: dict[int, str] = {
    0: "Success",
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    5: "Already Initialized",
    6: "Not Found",
    7: "Insufficient Size",
    8: "Insufficient External Power",
    9: "Driver Not Loaded",
    10: "Timeout",
    11: "Interrupt Request Issue",
    12: "NVML Shared Library Not Found",
    13: "Function Not Found",
    14: "Corrupted infoROM",
    15: "GPU is lost",
    16: "GPU requires reset",
    17: "GPU access blocked by the operating system",
    18: "Driver/library version mismatch",
    19: "In use by another client",
    20: "Insufficient Memory",
    21: "No data",
    22: "vGPU ECC not supported",
    23: "Insufficient Resources",
    24: "Invalid Frequency",
    25: "Argument version mismatch",
    26: "Requested functionality has been deprecated",
    27: "System is not in ready state",
    28: "No supported GPUs were found",
    29: "Resource not in correct state to perform requested operation",
    30: "Reset type is not supported for given device",
    999: "Unknown Error",
}


class NvmlCallError(Exception):
    """A simulated NVML call failing with ``code`` (what the C function would return)."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(f"{error_string(code)}{': ' + detail if detail else ''}")
        self.code = code
        self.detail = detail


def error_string(code: int) -> str:
    return ERROR_STRINGS.get(code, "Unknown Error")


def error_code(error: str | int) -> int:
    """Accept 23, "23", "INSUFFICIENT_RESOURCES", "NVML_ERROR_IN_USE" or "NVMLError_InUse"."""
    if isinstance(error, int):
        code = error
    else:
        text = str(error).strip()
        if text.lstrip("-").isdigit():
            code = int(text)
        else:
            key = text.upper()
            for prefix in ("NVML_ERROR_", "NVMLERROR_"):
                key = key.removeprefix(prefix)
            code = ERROR_CODES.get(key)
            if code is None:
                camel = {name.replace("_", ""): value for name, value in ERROR_CODES.items()}
                code = camel.get(key)
            if code is None:
                raise ValueError(f"unknown NVML error {error!r}")
    if code not in ERROR_STRINGS or code == SUCCESS:
        raise ValueError(f"not an NVML error code: {code}")
    return code


def error_name(code: int) -> str:
    return next((f"NVML_ERROR_{name}" for name, value in ERROR_CODES.items() if value == code), str(code))
