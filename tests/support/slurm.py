"""Helpers of the tests against a real SLURM cluster (scripts/slurm-cluster.sh start).

`SlurmCalls` puts logging wrappers of sbatch, squeue and scancel first on PATH: each call
is appended to a log, then the real command runs. Used as an experiment script,
`python support/slurm.py WORKDIR LOG GATE N CPUS` runs N gated steps through SLURM (the
restart tests kill it with -9 and run it again).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from legato import SlurmLauncher

COMMANDS = ("sbatch", "squeue", "scancel")
REQUIRE = "LEGATO_REQUIRE_SLURM"
"""Set to 1 (CI does) to make the tests fail, not skip, when the test cluster is not reachable."""
CLUSTER = "legatotest"
"""The name scripts/slurm-cluster.sh gives its cluster."""
PARTITIONS = {"debug", "other"}
"""The partitions of that cluster, both on its one node."""


def fast(**resources: Any) -> SlurmLauncher:
    """A launcher that polls often: the tests wait on SLURM, not on the back-off."""
    return SlurmLauncher(poll_interval=0.2, max_poll_interval=1.0, **resources)


def read_state(job_dir: Path) -> dict[str, Any]:
    """A job's state.json, {} before it is written."""
    path = job_dir / "state.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when the test cluster answers.

    The tests submit jobs: on a login node, whatever cluster answers would be a production
    one. So they run only against the cluster scripts/slurm-cluster.sh makes: named
    `legatotest`, its controller and its one node on this machine, partitions `debug` and
    `other`.
    """
    missing = [cmd for cmd in ("sinfo", "scontrol", *COMMANDS) if shutil.which(cmd) is None]
    if missing:
        return f"{', '.join(missing)} not on PATH (scripts/slurm-cluster.sh install && start)"
    foreign = not_the_test_cluster()
    if foreign is not None:
        return foreign
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s (is slurmctld running?)"
    states = done.stdout.split()
    if done.returncode != 0:
        return f"sinfo failed: {done.stderr.strip()[:300]} (scripts/slurm-cluster.sh start)"
    if not any(state.rstrip("*~#") in ("idle", "mixed", "allocated") for state in states):
        return f"no SLURM node is up (sinfo: {' '.join(states) or 'nothing'})"
    return None


def not_the_test_cluster() -> str | None:
    """Why the cluster that answers is not scripts/slurm-cluster.sh's, or None when it is."""
    try:
        config = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=15
        )
        nodes = subprocess.run(
            ["sinfo", "--noheader", "--format=%R %N"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "scontrol or sinfo did not answer within 15 s (is slurmctld running?)"
    if config.returncode != 0:
        return f"scontrol show config failed: {config.stderr.strip()[:300]}"
    settings = {}
    for line in config.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip()] = value.strip()
    host = socket.gethostname().split(".")[0]
    name = settings.get("ClusterName")
    controller = settings.get("SlurmctldHost[0]", "").split("(")[0]
    shape = {tuple(line.split()) for line in nodes.stdout.splitlines() if line.strip()}
    expected = {(partition, host) for partition in PARTITIONS}
    if name != CLUSTER or controller != host or shape != expected:
        found = ", ".join(" on ".join(pair) for pair in sorted(shape)) or "no partitions"
        return (
            f"the SLURM cluster that answers is not the test cluster of "
            f"scripts/slurm-cluster.sh ({CLUSTER!r}, controller and one node on {host!r}, "
            f"partitions {', '.join(sorted(PARTITIONS))}): it is {name!r}, controller "
            f"{controller!r}, {found}; the tests never submit jobs to another cluster"
        )
    return None


def node_cpus() -> int:
    """CPUs of the first node (the test cluster has one)."""
    done = subprocess.run(
        ["sinfo", "--noheader", "--format=%c"], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[0].rstrip("+"))


def queued(ids: list[str]) -> dict[str, str]:
    """{id: SLURM state} of those of `ids` that squeue still lists."""
    done = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i %T", f"--user={os.getuid()}"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = dict(line.split() for line in done.stdout.splitlines() if line.strip())
    return {i: listed[i] for i in ids if i in listed}


class SlurmCalls:
    """Logging wrappers of the SLURM commands in `directory`, which goes first on PATH."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.bin = directory
        self.log = directory / "calls.log"
        self.path = f"{directory}{os.pathsep}{os.environ['PATH']}"
        """PATH with the wrappers first."""
        for command in COMMANDS:
            real = shutil.which(command)
            assert real is not None, command
            wrapper = directory / command
            wrapper.write_text(
                "#!/bin/sh\n"
                f'printf "%s %s %s\\n" {command} "$(date +%s.%N)" "$*" >> "{self.log}"\n'
                f'"{real}" "$@"\n'
                "status=$?\n"
                f'printf "%s %s\\n" {command}.end "$(date +%s.%N)" >> "{self.log}"\n'
                "exit $status\n"
            )
            wrapper.chmod(0o755)

    def calls(self, command: str) -> list[tuple[float, str]]:
        """(time, arguments) of each call of `command` so far."""
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            name, when, args = [*line.split(" ", 2), ""][:3]
            if name == command:
                found.append((float(when), args))
        return found

    def pauses(self, command: str) -> list[float]:
        """Seconds from the end of each call of `command` to the start of the next: the
        caller's own delay, whatever the command's run time."""
        starts = [when for when, _ in self.calls(command)]
        ends = [when for when, _ in self.calls(f"{command}.end")]
        return [later - end for end, later in zip(ends, starts[1:], strict=False)]

    def args(self, command: str) -> list[str]:
        return [args for _, args in self.calls(command)]

    def count(self, command: str) -> int:
        return len(self.calls(command))


def main(workdir: str, log: str, gate: str, n: int, cpus: int) -> None:
    import anyio

    from legato import SlurmLauncher, experiment
    from support.xp_tasks import Step

    async def run() -> None:
        launcher = SlurmLauncher(cpus=cpus, poll_interval=0.2)
        async with experiment(workdir, "restart", launcher=launcher) as xp:
            for i in range(n):
                await Step(name=f"gated{i}", log=log, gate=gate).submit()
            print("submitted", flush=True)
        print("finished", " ".join(job.state.name for job in xp.jobs), flush=True)

    anyio.run(run)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `support`
    workdir, log, gate, n, cpus = sys.argv[1:]
    main(workdir, log, gate, int(n), int(cpus))
