"""scripts/slurm-cluster.sh and the guard that keeps the SLURM tests on its cluster.

Fake `scontrol`/`sinfo`/`slurmctld` scripts first on PATH stand for a foreign cluster or a
daemon that dies at start, so these run on every machine (the script itself needs root).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from support.slurm import CLUSTER, cluster_problem

SCRIPT = Path(__file__).parent.parent / "scripts" / "slurm-cluster.sh"
HOST = socket.gethostname().split(".")[0]


def fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def fake_cluster(bin_dir: Path, name: str, controller: str, nodes: str) -> None:
    """scontrol, sinfo, sbatch, squeue and scancel of a cluster that is up and idle."""
    fake(
        bin_dir, "scontrol", f'printf "ClusterName = {name}\\nSlurmctldHost[0] = {controller}\\n"\n'
    )
    fake(
        bin_dir,
        "sinfo",
        f'case "$*" in *%N*) printf "{nodes}";; *) echo idle;; esac\n',
    )
    for command in ("sbatch", "squeue", "scancel"):
        fake(bin_dir, command, "exit 0\n")


@pytest.mark.parametrize(
    ("name", "controller", "nodes", "reason"),
    [
        ("prod", HOST, f"debug {HOST}\\nother {HOST}\\n", "'prod'"),
        (CLUSTER, "ctl01", f"debug {HOST}\\nother {HOST}\\n", "'ctl01'"),
        (CLUSTER, HOST, f"debug {HOST}\\nother {HOST}\\ngpu node7\\n", "gpu on node7"),
        (CLUSTER, HOST, f"debug {HOST}\\n", "debug on"),
    ],
)
def test_slurm_tests_refuse_a_cluster_that_is_not_the_test_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    controller: str,
    nodes: str,
    reason: str,
) -> None:
    fake_cluster(tmp_path / "bin", name, controller, nodes)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    problem = cluster_problem()
    assert problem is not None
    assert "not the test cluster of scripts/slurm-cluster.sh" in problem
    assert reason in problem


def test_slurm_tests_accept_the_test_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_cluster(tmp_path / "bin", CLUSTER, HOST, f"debug {HOST}\\nother {HOST}\\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert cluster_problem() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/slurm-cluster.sh start needs root")
def test_cluster_script_prints_the_fatal_line_of_a_daemon_that_does_not_come_up(
    tmp_path: Path,
) -> None:
    """The case of a machine holding another SLURM's state: slurmctld forks, then exits
    with its reason written only to its log."""
    bin_dir = tmp_path / "bin"
    fake(bin_dir, "dpkg-query", "printf 'install ok installed'\n")
    fake(bin_dir, "pgrep", "echo 1\n")  # munged is up
    fatal = "fatal: CLUSTER NAME MISMATCH. slurmctld has been started with ClusterName=x"
    fake(
        bin_dir,
        "slurmctld",
        'log=$(sed -n "s/^SlurmctldLogFile=//p" "$SLURM_CONF")\n'
        f'echo "[2026-01-01T00:00:00] {fatal}" >> "$log"\n',
    )
    fake(bin_dir, "slurmd", "exit 0\n")
    fake(bin_dir, "sinfo", "exit 1\n")
    fake(bin_dir, "scontrol", "exit 0\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_CONF": str(tmp_path / "etc" / "slurm.conf"),
        "SLURM_TEST_DIR": str(tmp_path / "cluster"),
        "SLURM_START_TIMEOUT": "600",
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert fatal in done.stderr
    assert "slurmctld did not come up" in done.stderr
    conf = (tmp_path / "etc" / "slurm.conf").read_text()
    assert f"ClusterName={CLUSTER}\n" in conf
    assert f"StateSaveLocation={tmp_path / 'cluster' / 'state'}\n" in conf
    assert "/var/spool" not in conf
