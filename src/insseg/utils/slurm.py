"""torch.distributed's rendezvous from SLURM's environment, for processes that srun started one per task.

torchrun tells each process ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.
When srun (or submitit, which runs its tasks through srun) starts every process itself, there is no torchrun,
but SLURM describes the same things: the job's nodes (``SLURM_JOB_NODELIST``, compressed as in
``gpu[01-04,07]``), the step's task count (``SLURM_STEP_NUM_TASKS``: srun's ``SLURM_NTASKS`` for this
step), this task's global and node-local index (``SLURM_PROCID``, ``SLURM_LOCALID``).
:func:`export_slurm_rendezvous` fills in torchrun's variables from them so that ``init_process_group``'s default
``env://`` rendezvous works: MASTER_ADDR is the first node of the step, MASTER_PORT a port derived from the job id
(the same on every task, 20000-59999) unless MASTER_PORT is already set.

Only inside an srun step (``SLURM_STEP_NUM_TASKS`` set): a batch script that runs ``python train.py`` itself
also sees ``SLURM_NTASKS`` and ``SLURM_PROCID=0``, and must not wait for ranks that nobody starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

from insseg.errors import ConfigError

PORT_BASE, PORT_SPAN = 20000, 40000
DEFAULT_PORT = 29500  # torchrun's, for a job id that is not a number
TORCHRUN_KEYS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")
_GROUP = re.compile(r"\[([^\]]*)\]")


def _split_top_level(nodelist: str) -> list[str]:
    """``a[1-2,5],b`` -> ``["a[1-2,5]", "b"]``: commas outside brackets separate host expressions."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError("unbalanced ']'")
        if ch == "," and depth == 0:
            parts.append(nodelist[start:k])
            start = k + 1
    if depth:
        raise ValueError("unbalanced '['")
    parts.append(nodelist[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_group(body: str) -> list[str]:
    """``01-03,07`` -> ``["01", "02", "03", "07"]`` (zero padding kept, as SLURM writes it)."""
    out = []
    for item in body.split(","):
        lo, sep, hi = item.strip().partition("-")
        if not sep:
            out.append(lo)
            continue
        if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
            raise ValueError(f"bad range {item!r}")
        out += [str(n).zfill(len(lo)) for n in range(int(lo), int(hi) + 1)]
    return out


def expand_nodelist(nodelist: str) -> list[str]:
    """Every host of a SLURM node list, in order: ``node[01-02,07],gpu-a1`` -> ``node01 node02 node07
    gpu-a1``; several bracket groups in one name expand as a product (``r[1-2]-n[1-2]`` -> 4 hosts)."""
    try:
        hosts = []
        for expr in _split_top_level(nodelist):
            names = [""]
            pos = 0
            for match in _GROUP.finditer(expr):
                prefix = expr[pos : match.start()]
                names = [n + prefix + v for n in names for v in _expand_group(match.group(1))]
                pos = match.end()
            hosts += [n + expr[pos:] for n in names]
    except ValueError as exc:
        raise ConfigError(f"cannot read the SLURM node list {nodelist!r}: {exc}") from exc
    if not hosts:
        raise ConfigError(f"the SLURM node list {nodelist!r} names no host")
    return hosts


def master_port(job_id: str | None) -> int:
    """A port every task of a job agrees on without talking: 20000 + job id mod 40000 (29500 without one)."""
    return PORT_BASE + int(job_id) % PORT_SPAN if job_id and job_id.isdigit() else DEFAULT_PORT


def slurm_rendezvous(env: Mapping[str, str]) -> dict[str, str] | None:
    """torchrun's variables derived from SLURM's in ``env``; None when torchrun's are there already
    (``WORLD_SIZE`` and ``RANK``) or this is not a task of an srun step. Variables already in ``env``
    (say a MASTER_PORT the user chose) are kept."""
    if "WORLD_SIZE" in env and "RANK" in env:
        return None
    if "SLURM_STEP_NUM_TASKS" not in env or "SLURM_PROCID" not in env:
        return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ConfigError("SLURM sets SLURM_PROCID but no node list (SLURM_JOB_NODELIST): cannot find the master")
    derived = {
        "MASTER_ADDR": expand_nodelist(nodelist)[0],
        "MASTER_PORT": str(master_port(env.get("SLURM_JOB_ID"))),
        "WORLD_SIZE": env["SLURM_STEP_NUM_TASKS"],
        "RANK": env["SLURM_PROCID"],
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
    }
    return {k: env.get(k, v) for k, v in derived.items()}


def slurm_run_id(env: Mapping[str, str] = os.environ) -> str | None:
    """``slurm<job id>.<step id>`` in a task of an srun step of several tasks, where every task must resolve
    the same run dir but each starts at its own time; None elsewhere."""
    tasks = env.get("SLURM_STEP_NUM_TASKS", "")
    if tasks.isdigit() and int(tasks) > 1 and env.get("SLURM_JOB_ID"):
        return f"slurm{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    return None


def export_slurm_rendezvous(environ: MutableMapping[str, str] = os.environ) -> dict[str, str] | None:
    """Put :func:`slurm_rendezvous`'s variables into ``environ`` (the process environment by default);
    returns them, or None when nothing was derived."""
    derived = slurm_rendezvous(environ)
    if derived:
        environ.update(derived)
    return derived
