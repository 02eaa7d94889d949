"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test fetches get-pip.py from a host that CI and developer machines cannot reach;
this does the same job with the interpreter's bundled ensurepip, then installs the pip
version ansible-test asked for from the package index.  ensurepip runs in its own process
because it points PIP_CONFIG_FILE at /dev/null in its environment, which would hide the
machine's pip configuration (index, CA bundle) from the install that follows.
"""
from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
pip_arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *pip_arguments])
