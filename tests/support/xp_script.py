"""An experiment script the crash tests run (and kill) in its own process.

usage: python xp_script.py WORKDIR LOG GATE N_QUICK N_GATED [MAX_JOBS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from legato import experiment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `support`, run as a script
from support.xp_tasks import Step


async def main(workdir: str, log: str, gate: str, quick: int, gated: int, max_jobs: int) -> None:
    async with experiment(workdir, "crash", max_jobs=max_jobs) as xp:
        for i in range(quick):
            await Step(name=f"quick{i}", log=log).submit()
        for i in range(gated):
            await Step(name=f"gated{i}", log=log, gate=gate).submit()
    print("finished", [job.state.name for job in xp.jobs], flush=True)


if __name__ == "__main__":
    workdir, log, gate, quick, gated, *rest = sys.argv[1:]
    anyio.run(main, workdir, log, gate, int(quick), int(gated), int(rest[0]) if rest else 2)
