"""A one-machine stand-in for SLURM's sbatch, srun, sacct and scancel, enough for submitit's SlurmExecutor.

``fake_slurm.py sbatch SCRIPT``: reads the script's ``#SBATCH`` lines (``--array``, ``--nodes``,
``--ntasks-per-node``, ``--output``, ``--error``), starts one detached ``bash SCRIPT`` per array index with the
job's SLURM variables (every "node" is a name from $FAKE_SLURM_NODELIST, all on this machine) and prints
``Submitted batch job <id>``; the first id is $FAKE_SLURM_JOB_ID, and each job's process group id is
appended to $FAKE_SLURM_PIDFILE when set. ``fake_slurm.py srun [--output F]
[--error F] [--unbuffered] CMD...``: starts the job's tasks (nodes x tasks per node), each with its
SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID and the step's variables, waits for all and exits with the worst
status. ``sacct`` answers with a header only (state unknown: submitit then waits for the result files);
``scancel`` does nothing. Tests install it with :func:`install`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def install(bin_dir: Path) -> None:
    """Executables sbatch, srun, sacct, scancel in ``bin_dir`` that run this file with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("sbatch", "srun", "sacct", "scancel"):
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {tool} "$@"\n')
        path.chmod(0o755)


def _open(pattern: str, env: dict[str, str], task: int = 0):
    """The log file ``pattern`` names for this job and task (%A, %a, %j, %t filled in), its folder made."""
    path = pattern.replace("%A", env.get("SLURM_ARRAY_JOB_ID", env["SLURM_JOB_ID"]))
    path = path.replace("%a", env.get("SLURM_ARRAY_TASK_ID", "0")).replace("%j", env["SLURM_JOB_ID"])
    path = Path(path.replace("%t", str(task)))
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a")


def sbatch(script: str) -> None:
    flags = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", Path(script).read_text(), flags=re.M))
    first, _, _ = flags.get("array", "0-0").partition("%")
    lo, _, hi = first.partition("-")
    job = int(os.environ["FAKE_SLURM_JOB_ID"])
    nodes = int(flags.get("nodes", "1"))
    per_node = int(flags.get("ntasks-per-node", "1"))
    for index in range(int(lo), int(hi or lo) + 1):
        array = {"SLURM_ARRAY_JOB_ID": str(job), "SLURM_ARRAY_TASK_ID": str(index)} if "array" in flags else {}
        env = {
            **os.environ,
            **array,
            "SLURM_JOB_ID": str(job + index),
            "SLURM_JOB_NODELIST": os.environ["FAKE_SLURM_NODELIST"],
            "SLURM_JOB_NUM_NODES": str(nodes),
            "SLURM_NNODES": str(nodes),
            "SLURM_NTASKS": str(nodes * per_node),
            "SLURM_NTASKS_PER_NODE": str(per_node),
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "0",
        }
        out = _open(flags.get("output", "slurm-%j.out"), env)
        err = _open(flags["error"], env) if "error" in flags else out
        job_proc = subprocess.Popen(["bash", script], env=env, stdout=out, stderr=err, start_new_session=True)
        if os.environ.get("FAKE_SLURM_PIDFILE"):  # so that a test can end what is left of a failed job
            with open(os.environ["FAKE_SLURM_PIDFILE"], "a") as f:
                f.write(f"{job_proc.pid}\n")
    print(f"Submitted batch job {job}", flush=True)


def srun(args: list[str]) -> int:
    opts: dict[str, str] = {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            opts[flag] = args.pop(0)
    ntasks, per_node = int(os.environ["SLURM_NTASKS"]), int(os.environ["SLURM_NTASKS_PER_NODE"])
    procs = []
    for task in range(ntasks):
        env = {
            **os.environ,
            "SLURM_PROCID": str(task),
            "SLURM_LOCALID": str(task % per_node),
            "SLURM_NODEID": str(task // per_node),
            "SLURM_STEP_ID": "0",
            "SLURM_STEP_NUM_TASKS": str(ntasks),
            "SLURM_STEP_NODELIST": os.environ["SLURM_JOB_NODELIST"],
        }
        out = _open(opts["--output"], env, task) if "--output" in opts else None
        err = _open(opts["--error"], env, task) if "--error" in opts else out
        procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=err))
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    if tool == "sbatch":
        sbatch(rest[-1])
    elif tool == "srun":
        sys.exit(srun(rest))
    elif tool == "sacct":
        print("JobID|State|NodeList")
