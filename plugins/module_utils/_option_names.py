# Copyright: (c) 2026, gpufleet.mig contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a failure message calls a module option: the option itself, or the playbook variable a role feeds it.

A module run by itself names its own options (``raise timeout``). Run by a role of the collection, the user never
sees the option: they set ``drain_timeout`` or ``mig_in_use``. The roles pass ``option_names`` (doc fragment
``gpufleet.mig.option_names``), and every message that advises an option names it through ``option_name``.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

from ansible_collections.gpufleet.mig.plugins.module_utils._errors import MigError

OptionNames = Optional[Mapping[str, str]]


def option_names_argument_spec() -> dict:
    return {"option_names": {"type": "dict", "default": {}}}


def option_name(names: OptionNames, option: str) -> str:
    """The name a message uses for ``option``: its entry in ``names``, else the option itself."""
    return (names or {}).get(option) or option


def checked_option_names(names: OptionNames, options: Iterable[str]) -> dict:
    """``names`` as a plain dict; a key that is no option of the module is refused (a typo would go unnoticed)."""
    names = dict(names or {})
    unknown = sorted(set(names) - set(options))
    if unknown:
        raise MigError("option_names: %s %s no option of this module" % (", ".join(unknown), "is" if len(unknown) == 1 else "are"))
    return dict((option, str(name)) for option, name in names.items())
