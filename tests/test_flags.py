"""Every module of the four packages imports into one process without a flag clash.

Tests import binaries' modules side by side, so a flag defined at import time by two
binaries (say --data_dir) would fail whichever test happened to import the second.
"""

import importlib
import pkgutil

import pytest

PACKAGES = ("experts", "fanout", "hub_export", "vtab_eval")


def _modules():
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            yield info.name


@pytest.mark.parametrize("package_name", PACKAGES)
def test_package_is_walkable(package_name):
    assert any(name.startswith(f"{package_name}.") for name in _modules())


def test_all_modules_import_together():
    for name in _modules():
        importlib.import_module(name)
