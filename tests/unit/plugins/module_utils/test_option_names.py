"""What failure messages call a module's options: the option, or the playbook variable a role feeds it."""
from __future__ import annotations

import pytest

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError
from ansible_collections.gpufleet.mig.plugins.module_utils._option_names import checked_option_names, option_name
from ansible_collections.gpufleet.mig.plugins.module_utils._selection import GpuSelectionError, select_gpus


def test_an_option_is_called_by_the_name_given_else_by_its_own():
    names = {"timeout": "drain_timeout"}
    assert (option_name(names, "timeout"), option_name(names, "force"), option_name(None, "timeout")) == (
        "drain_timeout", "force", "timeout")


def test_a_name_for_an_option_the_module_lacks_is_refused():
    assert checked_option_names({"timeout": "drain_timeout"}, ["timeout", "force"]) == {"timeout": "drain_timeout"}
    with pytest.raises(MigError, match="option_names: timout is no option of this module"):
        checked_option_names({"timout": "drain_timeout"}, ["timeout", "force"])


def test_a_gpu_selection_error_names_the_variable():
    with pytest.raises(GpuSelectionError, match=r"^mig_gpus: this node has no GPU 3; it has: 0 \(GPU-0\)$"):
        select_gpus([{"index": 0, "uuid": "GPU-0"}], [3], "mig_gpus")
