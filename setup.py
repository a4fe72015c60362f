"""Packages are found automatically; the grammar and the spec library live at the
repository root (grammar/, specs/) and are mapped into the package as udnet.grammar and
udnet.specs (see [tool.setuptools.package-dir] in pyproject.toml)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["udnet", "udnet.*"]), "udnet.grammar", "udnet.specs"])
