"""cove.engine.container_stats: docker's stats arithmetic over readings (no cgroups needed),
the cgroup file parsers it relies on, and `cove stats`/`cove top` output."""

from __future__ import annotations

from cove.cli.engine.container_stats import binary_size, fields, render_rows
from cove.cli.engine.container_top import table
from cove.engine.container_stats import (
    NS,
    Sample,
    block_io,
    cpu_percent,
    figures,
    host_memory,
    memory_limit,
    memory_usage,
    net_io,
    sample_from,
    system_cpu_ns,
)
from cove.engine.container_top import parse_ps
from cove.engine.oci_runtime_cgroups import parse_blkio_v1, parse_io_stat
from cove.engine.state import ContainerRecord

PROC_STAT = """cpu  100 20 30 400 5 6 7 0 0 0
cpu0 50 10 15 200 2 3 3 0 0 0
intr 12345
"""
NET_DEV = "\n".join([
    "Inter-|   Receive                  |  Transmit",
    " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop",
    "    lo:  999999 10 0 0 0 0 0 0   999999 10 0 0 0 0 0 0",
    "  eth0:    1500 12 0 0 0 0 0 0      700  7 0 0 0 0 0 0",
    "  eth1:     500  2 0 0 0 0 0 0      300  3 0 0 0 0 0 0",
    "",
])  # fmt: skip
MEMINFO = "MemTotal:        8000000 kB\nMemFree:  100 kB\n"


def test_system_cpu_is_the_first_seven_fields_in_ns() -> None:
    assert system_cpu_ns(PROC_STAT, 100) == (100 + 20 + 30 + 400 + 5 + 6 + 7) * NS // 100
    assert system_cpu_ns("nothing\n", 100) == 0


def test_cpu_percent_as_docker() -> None:
    before = Sample(cpu_total=1 * NS, system_cpu=100 * NS, online_cpus=4)
    after = Sample(cpu_total=2 * NS, system_cpu=104 * NS, online_cpus=4)
    # one CPU-second of four over one wall second: 100% of one CPU, as docker shows it
    assert cpu_percent(before, after) == 100.0
    assert cpu_percent(after, before) == 0.0  # counters went back (a restart): 0, not negative
    assert cpu_percent(before, before) == 0.0


def test_memory_without_the_inactive_cache() -> None:
    v1 = {"usage": {"usage": 10_000, "limit": 9223372036854771712},
          "raw": {"total_inactive_file": 4_000, "cache": 6_000}}  # fmt: skip
    assert memory_usage(v1) == 6_000
    v2 = {"usage": {"usage": 10_000, "limit": 0}, "raw": {"inactive_file": 1_000}}
    assert memory_usage(v2) == 9_000
    odd = {"usage": {"usage": 10_000}, "raw": {"inactive_file": 20_000}}
    assert memory_usage(odd) == 10_000  # never negative
    assert memory_usage({}) == 0


def test_memory_limit_falls_back_to_the_host() -> None:
    host = host_memory(MEMINFO)
    assert host == 8_000_000 * 1024
    assert memory_limit({"usage": {"limit": 64 << 20}}, host) == 64 << 20
    assert memory_limit({"usage": {"limit": 9223372036854771712}}, host) == host  # v1 none
    assert memory_limit({"usage": {"limit": 0}}, host) == host  # v2 "max"
    assert memory_limit({"usage": {"limit": host * 2}}, host) == host


def test_block_and_network_io() -> None:
    text = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 1\n8:16 Read 100\nTotal 4708\n"
    entries = parse_blkio_v1(text)
    assert {"major": 8, "minor": 0, "op": "Read", "value": 4096} in entries
    assert block_io(entries) == (4196, 512)
    v2 = parse_io_stat("8:0 rbytes=1000 wbytes=2000 rios=1 wios=2\n259:0 rbytes=5 wbytes=0\n")
    assert block_io(v2) == (1005, 2000)
    serviced = parse_io_stat("8:0 rbytes=1000 wbytes=2000 rios=1 wios=2\n", ("rios", "wios"))
    assert serviced == [{"major": 8, "minor": 0, "op": "Read", "value": 1},
                        {"major": 8, "minor": 0, "op": "Write", "value": 2}]  # fmt: skip
    assert net_io(NET_DEV) == (2000, 1000)  # lo is not counted
    assert net_io(NET_DEV.split("\n  eth0")[0]) == (0, 0)  # --network none: only lo


def test_a_sample_and_its_figures() -> None:
    data = {
        "cpu": {"usage": {"total": 3 * NS}},
        "memory": {
            "usage": {"usage": 2 << 20, "limit": 4 << 20},
            "raw": {"total_inactive_file": 0},
        },
        "pids": {"current": 3},
        "blkio": {"ioServiceBytesRecursive": [{"op": "Read", "value": 10}]},
    }  # fmt: skip
    first = sample_from(data, system_cpu=100 * NS, online_cpus=2, net_dev=NET_DEV,
                        host_memory_bytes=1 << 30)  # fmt: skip
    data["cpu"] = {"usage": {"total": 4 * NS}}
    second = sample_from(data, system_cpu=102 * NS, online_cpus=2, net_dev=NET_DEV,
                         host_memory_bytes=1 << 30)  # fmt: skip
    shown = figures(first, second)
    assert shown.cpu_percent == 100.0  # 1 CPU-second over 2 CPU-seconds of 2 CPUs
    assert shown.memory_percent == 50.0 and shown.memory_limit == 4 << 20
    assert (shown.net_rx, shown.net_tx, shown.block_read, shown.pids) == (2000, 1000, 10, 3)
    assert figures(None, second).cpu_percent == 0.0


def test_output_as_docker() -> None:
    assert binary_size(0) == "0B"
    assert binary_size(3.664 * 1024 * 1024) == "3.664MiB"
    assert binary_size(64 << 20) == "64MiB"
    record = ContainerRecord(id="ab" * 32, name="web", image_id="x", image_name="bb:1")
    data = {"memory": {"usage": {"usage": 1 << 20, "limit": 64 << 20}}}
    shown = figures(None, sample_from(data, system_cpu=0, online_cpus=1, net_dev="",
                                      host_memory_bytes=1 << 30))  # fmt: skip
    row = fields(record, shown, no_trunc=False)
    assert row["ID"] == "abababababab" and row["MemUsage"] == "1MiB / 64MiB"
    assert row["MemPerc"] == "1.56%" and row["NetIO"] == "0B / 0B" and row["PIDs"] == "0"
    table_text = render_rows("", [row])
    assert table_text.splitlines()[0].split("   ")[:3] == ["CONTAINER ID", "NAME", "CPU %"]
    assert "MEM USAGE / LIMIT" in table_text and "BLOCK I/O" in table_text
    assert render_rows("{{.Name}}: {{.CPUPerc}}", [row]) == "web: 0.00%\n"
    custom = render_rows("table {{.Name}}\\t{{.MemPerc}}", [row]).splitlines()
    assert custom[0].split() == ["NAME", "MEM", "%"] and custom[1].split() == ["web", "1.56%"]
    stopped = fields(record, None, no_trunc=True)
    assert stopped["ID"] == record.id and stopped["CPUPerc"] == "--"


PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242    4200  3 10:01 ?        00:00:00 sh -c while :; do :; done
root        4243    4242  0 10:01 ?        00:00:00 sleep 5
"""


def test_top_keeps_the_containers_pids() -> None:
    titles, rows = parse_ps(PS, [4242, 4243])
    assert titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [row[1] for row in rows] == ["4242", "4243"]
    assert rows[0][-1] == "sh -c while :; do :; done"
    out = table(titles, rows).splitlines()
    assert out[0].startswith("UID" + " " * 17 + "PID")
    assert out[1].endswith("sh -c while :; do :; done")


def test_top_without_a_pid_column_is_an_error() -> None:
    import pytest

    from cove.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="PID"):
        parse_ps("USER COMMAND\nroot sh\n", [1])
    _titles, rows = parse_ps("  LWP CMD\n 7 x\n", [7])
    assert rows == [["7", "x"]]
