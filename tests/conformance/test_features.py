"""`features`: the JSON document (runc 1.1+) that containerd reads to learn what a runtime
can do. The same keys and the core facts for every runtime."""

from __future__ import annotations

import pytest

from tests.lib.probe import xfail_on
from tests.lib.runtimes import Runtime

pytestmark = pytest.mark.root

HOOKS = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"}  # fmt: skip


def test_features_document(runtime: Runtime, request: pytest.FixtureRequest) -> None:
    xfail_on(request, runtime, ["crun"], "crun 1.8 (Debian 12) has no features command")
    res = runtime.call("features")
    res.check()
    doc = res.json()
    assert {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux"} <= set(doc)
    assert doc["ociVersionMin"].startswith("1.") and doc["ociVersionMax"].startswith("1.")
    assert HOOKS <= set(doc["hooks"])
    assert {"ro", "rbind", "nosuid", "rprivate"} <= set(doc["mountOptions"])
    linux = doc["linux"]
    assert {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"} <= set(linux["namespaces"])
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["v1"] is True and linux["cgroup"]["v2"] is True
    seccomp = linux["seccomp"]
    assert seccomp["enabled"] is True
    assert {"SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL"} <= set(seccomp["actions"])
    assert "SCMP_CMP_EQ" in seccomp["operators"]
    assert "SCMP_ARCH_X86_64" in seccomp["archs"] or "SCMP_ARCH_AARCH64" in seccomp["archs"]
