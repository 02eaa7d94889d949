"""pynvml on a simulated node.

Put first on PYTHONPATH (``gpufleet_twin.nvml.node_env``), this file runs the source of the
real pynvml (nvidia-ml-py, the next ``pynvml`` on sys.path) in its own module namespace, so
the imported module *is* the real pynvml.  It then points ``pynvml.nvmlLib`` at the fake
libnvidia-ml of the node named by ``GPUFLEET_SIM_STATE``.  Without that variable it behaves
exactly like the real module.
"""

import importlib.machinery as _machinery
import os as _os
import sys as _sys

_shim_dir = _os.path.dirname(_os.path.abspath(__file__))


def _real_pynvml_origin():
    search_path = [entry for entry in _sys.path if _os.path.abspath(entry or _os.getcwd()) != _shim_dir]
    spec = _machinery.PathFinder.find_spec("pynvml", search_path)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ImportError("gpufleet-sim pynvml shim: the real pynvml (nvidia-ml-py) is not installed")
    return spec.origin


__file__ = _real_pynvml_origin()
# The source loader reuses the real module's __pycache__ and compiles without inheriting
# this file's compiler flags.
exec(_machinery.SourceFileLoader("pynvml", __file__).get_code("pynvml"), globals())

if _os.environ.get("GPUFLEET_SIM_STATE"):
    from gpufleet_twin.nvml import install as _install_fake_library

    _install_fake_library(_os.environ["GPUFLEET_SIM_STATE"])
