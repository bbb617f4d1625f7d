"""The optional compiled build; everything else about the package is in pyproject.toml.

``SCHEDOBS_COMPILE=1 pip install --no-build-isolation .`` (with ``mypy`` and a C
compiler installed) compiles the per-task modules listed in
``schedobs._compiled.HOT_MODULES`` with mypyc.  Without the variable the package
is pure Python, and the same modules run interpreted.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

ext_modules = []
if os.environ.get("SCHEDOBS_COMPILE") == "1":
    from mypyc.build import mypycify

    # The list lives beside the code it names; read without importing the package.
    hot = runpy.run_path(os.path.join("src", "schedobs", "_compiled.py"))["HOT_MODULES"]
    paths = [os.path.join("src", *name.split(".")) + ".py" for name in hot]
    ext_modules = mypycify(paths, opt_level="3")

setup(ext_modules=ext_modules)
