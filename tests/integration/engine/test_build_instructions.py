"""`cove build`: each Dockerfile instruction, checked in the built image's config and by
running the image (busybox imported as bb:1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    engine,
    inspect,
    layer_names,
    nothing_left,
    run_in,
    stored_config,
    text,
    write_context,
)

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture


def inspect_id(root: Path, image: str) -> str:
    return str(inspect(root, image)["Id"])


METADATA = """\
FROM bb:1
ARG VERSION=1.0
ARG SECRET
ENV APP=/opt/app NAME="my app" VERSION_SEEN=$VERSION
LABEL org.example.version=$VERSION "with space"="a b"
MAINTAINER someone@example.com
WORKDIR $APP
USER nobody:wheel
EXPOSE 80 8000-8001/udp
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGUSR2
HEALTHCHECK --interval=7s --timeout=2s --retries=4 CMD wget -q localhost
SHELL ["/bin/sh", "-ec"]
CMD echo "$NAME"
"""


def test_metadata_instructions_reach_the_config(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": METADATA})
    image, progress = built(engine, context, "-t", "meta:1", "--build-arg", "VERSION=2.5",
                            "--build-arg", "SECRET=hunter2",
                            "--label", "extra=from-cli")  # fmt: skip
    assert "STEP 1/14: FROM bb:1" in progress and "STEP 14/14: CMD" in progress
    assert "MAINTAINER is deprecated" in progress  # the parser's notes are shown
    config = stored_config(engine, "meta:1")
    assert config["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "APP=/opt/app", "NAME=my app", "VERSION_SEEN=2.5",
    ]  # fmt: skip
    execution = config["config"]
    assert execution["Labels"] == {"org.example.version": "2.5", "with space": "a b",
                                   "extra": "from-cli"}  # fmt: skip
    assert config["author"] == "someone@example.com"
    assert execution["WorkingDir"] == "/opt/app"
    assert execution["User"] == "nobody:wheel"
    assert execution["ExposedPorts"] == {"80/tcp": {}, "8000/udp": {}, "8001/udp": {}}
    assert execution["Volumes"] == {"/data": {}, "/cache": {}}
    assert execution["StopSignal"] == "SIGUSR2"
    assert execution["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost"],
                                        "Interval": 7_000_000_000, "Timeout": 2_000_000_000,
                                        "Retries": 4}  # fmt: skip
    assert execution["Shell"] == ["/bin/sh", "-ec"]
    assert execution["Cmd"] == ["/bin/sh", "-ec", 'echo "$NAME"']  # the SHELL of the moment
    # history as Docker's legacy builder writes it; build arg values stay out of it
    history = config["history"]
    created_by = [entry["created_by"] for entry in history[1:]]
    assert created_by[0] == "/bin/sh -c #(nop)  ARG VERSION=1.0"
    assert created_by[1] == "/bin/sh -c #(nop)  ARG SECRET"
    assert created_by[2] == "/bin/sh -c #(nop)  ENV APP=/opt/app NAME=my app VERSION_SEEN=2.5"
    assert "/bin/sh -c #(nop) WORKDIR /opt/app" in created_by
    assert created_by[-2] == '/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "echo \\"$NAME\\""]'
    assert created_by[-1] == "/bin/sh -ec #(nop)  LABEL extra=from-cli"  # --label, last
    assert all("hunter2" not in entry for entry in created_by)
    assert all(entry.get("empty_layer") for entry in history[1:] if "WORKDIR" not in
               entry["created_by"])  # fmt: skip
    # the image runs with them
    out = run_in(engine, "meta:1", "sh", "-c", "id -un; pwd; echo $VERSION_SEEN")
    assert out.split() == ["nobody", "/opt/app", "2.5"]
    assert run_in(engine, "meta:1").strip() == "my app"
    assert inspect_id(engine, "meta:1") == image
    nothing_left(engine)


def test_workdir_is_made_in_a_layer_only_when_missing(engine: Path, tmp_path: Path) -> None:
    dockerfile = "FROM bb:1\nWORKDIR /tmp\nWORKDIR /a/b\nWORKDIR c\nUSER nobody\nWORKDIR /mine\n"
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    built(engine, context, "-t", "wd")
    config = stored_config(engine, "wd")
    assert config["config"]["WorkingDir"] == "/mine"
    steps = [(e["created_by"], bool(e.get("empty_layer"))) for e in config["history"][1:]]
    assert steps[0] == ("/bin/sh -c #(nop) WORKDIR /tmp", True)  # busybox has /tmp
    assert steps[1] == ("/bin/sh -c #(nop) WORKDIR /a/b", False)
    assert steps[2] == ("/bin/sh -c #(nop) WORKDIR /a/b/c", False)
    assert len(config["rootfs"]["diff_ids"]) == 4  # busybox + three folders
    assert layer_names(engine, "wd", 1) == ["a", "a/b"]
    out = run_in(engine, "wd", "sh", "-c", "pwd; stat -c '%U %a' /mine /a/b/c")
    assert out.split("\n")[:3] == ["/mine", "nobody 755", "root 755"]


def test_entrypoint_drops_the_inherited_cmd(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1 AS base
CMD ["base-cmd"]
FROM base AS ep
ENTRYPOINT ["echo", "ep"]
FROM base AS both
ENTRYPOINT ["echo", "both"]
CMD ["kept"]
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    built(engine, context, "--target", "ep", "-t", "ep")
    built(engine, context, "-t", "both")
    assert "Cmd" not in stored_config(engine, "ep")["config"]
    assert run_in(engine, "ep").strip() == "ep"
    assert run_in(engine, "both").strip() == "both kept"
    assert run_in(engine, "both", "given").strip() == "both given"


def test_run_shell_and_exec_forms_and_their_history(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1
ARG V=7
RUN echo "shell form $V" > /shell
RUN ["sh", "-c", "echo exec form > /exec"]
SHELL ["/bin/echo", "through-shell"]
RUN hello
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, progress = built(engine, context)
    assert "through-shell hello" in progress  # the RUN went through the SHELL
    assert run_in(engine, image, "cat", "/shell", "/exec") == "shell form 7\nexec form\n"
    history = [e["created_by"] for e in stored_config(engine, image)["history"]]
    assert '|1 V=7 /bin/sh -c echo "shell form $V" > /shell' in history
    assert "|1 V=7 sh -c echo exec form > /exec" in history
    assert "|1 V=7 /bin/echo through-shell hello" in history


def test_run_changes_become_one_layer_without_mount_points(engine: Path, tmp_path: Path) -> None:
    dockerfile = "FROM bb:1\nRUN true\nRUN echo x > /tmp/x && rm /etc/group\n"
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context)
    config = stored_config(engine, image)
    assert config["history"][1].get("empty_layer") is True  # RUN true changed nothing
    assert len(config["rootfs"]["diff_ids"]) == 2
    # the RUN's layer: its file and the deletion, not the runtime's /etc/hosts & co.
    assert sorted(layer_names(engine, image, 1)) == ["etc", "etc/.wh.group", "tmp", "tmp/x"]
    assert run_in(engine, image, "sh", "-c", "cat /tmp/x; ls /etc/group || true") == "x\n"


def test_run_heredocs(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1
RUN <<EOF
echo one > /one
echo two >> /one
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /script
EOF
RUN cat <<X > /fed
fed on stdin
X
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context)
    out = run_in(engine, image, "cat", "/one", "/script", "/fed")
    assert out == "one\ntwo\nscript /dev/pipes/EOF\nfed on stdin\n"


def test_run_mounts(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1 AS tool
RUN echo from-stage > /tool.txt
FROM bb:1
RUN --mount=type=cache,target=/var/cache/app,id=app \\
    sh -c 'echo run >> /var/cache/app/runs; wc -l < /var/cache/app/runs > /runs-seen'
RUN --mount=type=bind,source=src,target=/src cat /src/input > /copied
RUN --mount=type=bind,source=src,target=/src,rw sh -c 'echo changed > /src/input'
RUN --mount=type=bind,from=tool,source=/tool.txt,target=/t.txt cat /t.txt > /from-stage
RUN --mount=type=tmpfs,target=/scratch \
    sh -c 'echo gone > /scratch/x; mount | grep -c " /scratch " > /tmpfs'
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "src/input": "data\n"})
    first, _ = built(engine, context, "--no-cache")
    out = run_in(engine, first, "cat", "/runs-seen", "/copied", "/from-stage", "/tmpfs")
    assert out.split() == ["1", "data", "from-stage", "1"]
    assert (context / "src" / "input").read_text() == "data\n"  # rw: writes are dropped
    second, _ = built(engine, context, "--no-cache")
    assert run_in(engine, second, "cat", "/runs-seen").strip() == "2"  # the cache mount stays
    listing = run_in(engine, second, "sh", "-c", "ls -d /var/cache/app /src /t.txt /scratch "
                      "2>&1 || true")  # fmt: skip
    assert listing.count("No such file or directory") == 4  # mount targets leave no trace
    nothing_left(engine)


def test_run_network_modes(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1
RUN ip -o link | wc -l > /default-links
RUN --network=none ip -o link | wc -l > /none-links
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context)
    assert run_in(engine, image, "cat", "/default-links", "/none-links").split() == ["2", "1"]
    only_lo, _ = built(engine, context, "--network", "none", "--no-cache")
    assert run_in(engine, only_lo, "cat", "/default-links").strip() == "1"


def test_onbuild_triggers_run_in_the_image_built_from_it(engine: Path, tmp_path: Path) -> None:
    parent = write_context(
        tmp_path / "parent",
        {
            "Dockerfile": (
                "FROM bb:1\nONBUILD COPY trigger.txt /from-trigger\nONBUILD RUN echo ran > /ran\n"
            )
        },
    )
    built(engine, parent, "-t", "parent:1")
    assert stored_config(engine, "parent:1")["config"]["OnBuild"] == [
        "COPY trigger.txt /from-trigger",
        "RUN echo ran > /ran",
    ]
    child = write_context(tmp_path / "child", {"Dockerfile": "FROM parent:1\nRUN cat /ran\n",
                                               "trigger.txt": "child's file\n"})  # fmt: skip
    image, progress = built(engine, child)
    assert "executing 2 build triggers" in progress
    assert run_in(engine, image, "cat", "/from-trigger", "/ran") == "child's file\nran\n"
    assert "OnBuild" not in stored_config(engine, image)["config"]  # not inherited further


def test_build_args_scopes_and_warnings(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
ARG BASE=bb:1
ARG GLOBAL=global-default
FROM $BASE
ARG GLOBAL
ARG LOCAL=local-default
ENV FROM_ENV=$LOCAL
RUN echo "$GLOBAL $LOCAL $FROM_ENV" > /args
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, progress = built(engine, context, "--build-arg", "LOCAL=given", "--build-arg",
                            "UNUSED=1")  # fmt: skip
    assert "not consumed: UNUSED" in progress
    assert run_in(engine, image, "cat", "/args").strip() == "global-default given given"
    env = stored_config(engine, image)["config"]["Env"]
    assert "FROM_ENV=given" in env and not any(e.startswith(("LOCAL=", "GLOBAL=")) for e in env)


def test_invalid_stop_signal_names_the_line(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM bb:1\nSTOPSIGNAL NOPE\n"})
    res = build(engine, context)
    assert res.returncode == 1
    assert "Dockerfile:2: STOPSIGNAL: invalid signal: NOPE" in text(res)[1]
