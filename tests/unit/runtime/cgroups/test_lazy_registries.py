"""The cgroup registries load their controllers' modules when first read: a caller that
needs one module (the freezer, at every delete) loads only that one."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_one_controller_loads_alone_and_the_registry_loads_all(version: str) -> None:
    package = f"cove.runtime.cgroups.{version}"
    code = (
        f"import sys, {package}.freezer\n"
        f"print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('{package}.')))\n"
        f"from {package} import CONTROLLERS\n"
        f"print(len(CONTROLLERS), sorted(m.rsplit('.', 1)[1] for m in sys.modules"
        f" if m.startswith('{package}.') and m.rsplit('.', 1)[1] in CONTROLLERS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    alone, loaded = out.stdout.splitlines()
    assert alone == "['_files', 'freezer']"
    count, names = loaded.split(" ", 1)
    assert int(count) == names.count("'") // 2 and int(count) >= 9


def test_an_unknown_name_is_an_attribute_error() -> None:
    from cove.runtime.cgroups import v1, v2

    for package in (v1, v2):
        with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
            package.NOPE  # noqa: B018
