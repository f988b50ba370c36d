"""SLURM: node lists, the rendezvous derived from a faked SLURM environment (and a real 2-process gloo
rendezvous through it), and the submitit launcher config composing."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from insseg.errors import ConfigError
from insseg.utils.distributed import DistInfo, init_distributed
from insseg.utils.slurm import expand_nodelist, export_slurm_rendezvous, master_port, slurm_rendezvous

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("gpu-a1", ["gpu-a1"]),
        ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
        ("node[8-11]", ["node8", "node9", "node10", "node11"]),
        ("a[1-2],b[009-010],c", ["a1", "a2", "b009", "b010", "c"]),
        ("node[1-2]-ib", ["node1-ib", "node2-ib"]),
        ("r[1-2]-n[01-02]", ["r1-n01", "r1-n02", "r2-n01", "r2-n02"]),
        ("x[3]", ["x3"]),
    ],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["node[01-", "node]1[", "node[5-3]", "node[a-b]", ""])
def test_bad_nodelist_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="SLURM node list"):
        expand_nodelist(bad)


def slurm_task(procid: int, localid: int, ntasks: int = 16, nodelist: str = "gpu[07-08]", job: str = "4242") -> dict:
    """The environment srun gives task ``procid`` of a step (only the variables that matter here)."""
    return {
        "SLURM_JOB_ID": job,
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NTASKS": str(ntasks),
        "SLURM_STEP_NUM_TASKS": str(ntasks),
        "SLURM_PROCID": str(procid),
        "SLURM_LOCALID": str(localid),
        "SLURM_STEP_ID": "0",
        "PATH": "/usr/bin",
    }


def test_rendezvous_of_a_task_on_the_second_node():
    got = slurm_rendezvous(slurm_task(procid=13, localid=5))
    assert got == {
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(20000 + 4242),
        "WORLD_SIZE": "16",
        "RANK": "13",
        "LOCAL_RANK": "5",
    }
    # Every task of the job agrees on the master and the port.
    assert {
        (slurm_rendezvous(slurm_task(p, p % 8))["MASTER_ADDR"], slurm_rendezvous(slurm_task(p, p % 8))["MASTER_PORT"])
        for p in range(16)
    } == {("gpu07", "24242")}


def test_port_from_job_id():
    assert master_port("123456") == 20000 + 123456 % 40000
    assert master_port("59999") == 20000 + 19999 and 20000 <= master_port("99999999") < 60000
    assert master_port(None) == master_port("abc") == 29500


def test_step_nodelist_and_user_settings_win():
    env = {**slurm_task(1, 1), "SLURM_STEP_NODELIST": "gpu08", "MASTER_PORT": "31337"}
    got = slurm_rendezvous(env)
    assert got["MASTER_ADDR"] == "gpu08" and got["MASTER_PORT"] == "31337"


def test_torchrun_variables_take_precedence():
    assert slurm_rendezvous({**slurm_task(3, 3), "WORLD_SIZE": "4", "RANK": "3"}) is None


def test_no_rendezvous_outside_an_srun_step():
    assert slurm_rendezvous({"PATH": "/usr/bin"}) is None
    # A batch script's own environment: SLURM_NTASKS and SLURM_PROCID=0, but no step of tasks. Deriving a
    # world of 16 here would wait forever for ranks nobody starts.
    batch = {k: v for k, v in slurm_task(0, 0).items() if not k.startswith("SLURM_STEP")}
    assert slurm_rendezvous(batch) is None


def test_missing_nodelist_is_a_clear_error():
    env = {k: v for k, v in slurm_task(0, 0).items() if k != "SLURM_JOB_NODELIST"}
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        slurm_rendezvous(env)


def test_export_fills_the_environment():
    env = slurm_task(2, 0, ntasks=4, nodelist="cpu[1-2]")
    assert export_slurm_rendezvous(env)["RANK"] == "2"
    assert (env["WORLD_SIZE"], env["RANK"], env["LOCAL_RANK"], env["MASTER_ADDR"]) == ("4", "2", "0", "cpu1")
    assert export_slurm_rendezvous(env) is None  # now torchrun's variables are there


def test_init_distributed_with_a_one_task_step_stays_single_process(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in slurm_task(0, 0, ntasks=1, nodelist="localhost").items():
        monkeypatch.setenv(key, value)
    assert init_distributed(torch.device("cpu")) == DistInfo()
    assert os.environ["WORLD_SIZE"] == "1"


def _free_port_in_range() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if 20000 <= port < 60000:
            return port
    pytest.skip("no free port in 20000-59999")


CHILD = """
import torch, torch.distributed as dist
from insseg.utils.distributed import cleanup, init_distributed
info = init_distributed(torch.device("cpu"))
t = torch.tensor([float(info.rank + 1)])
dist.all_reduce(t)
print(f"rank={info.rank} world={info.world_size} local={info.local_rank} sum={t.item():g}", flush=True)
cleanup(info)
"""


def test_two_srun_tasks_meet_through_the_derived_rendezvous():
    """Two processes with only SLURM's variables (as srun starts them) join one gloo group: the port comes
    from the job id, the master from the node list."""
    port = _free_port_in_range()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    base.update(PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env={**base, **slurm_task(r, r, ntasks=2, nodelist="localhost", job=str(port - 20000))},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for r, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, out
        assert f"rank={r} world=2 local={r} sum=3" in out, out


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    from insseg.config import register_configs
    from insseg.config.compose import CONF_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", ["hydra/launcher=slurm_gpu", "device=cuda", "hydra.launcher.nodes=4"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert launcher.nodes == 4 and launcher.tasks_per_node == launcher.gpus_per_node == 8
    assert launcher.gpus_per_task is None  # GPUs per node: every task sees its node's GPUs
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"  # the job's own run dirs
    assert cfg.device.type == "cuda"


def test_run_id_is_shared_by_the_tasks_of_a_step():
    from insseg.utils.slurm import slurm_run_id

    ids = {slurm_run_id({**slurm_task(p, p % 8), "SLURM_STEP_ID": "3"}) for p in range(16)}
    assert ids == {"slurm4242.3"}
    assert slurm_run_id(slurm_task(0, 0, ntasks=1)) is None  # one task: the start time serves
    assert slurm_run_id({"PATH": "/usr/bin"}) is None


def test_srun_tasks_resolve_one_run_dir(monkeypatch):
    """The run dir a task of a multi-task step resolves comes from the job and step, not its start time."""
    from insseg.config import schema

    monkeypatch.setattr(schema, "_RUN_ID", None)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    for key, value in {**slurm_task(5, 5), "SLURM_STEP_ID": "0"}.items():
        monkeypatch.setenv(key, value)
    assert schema.run_id() == "slurm4242.0"


@pytest.mark.slow
def test_srun_style_training_on_gloo_writes_one_run_dir(tmp_path, pennfudan_root):
    """docs/cluster.md's `srun python train.py` recipe without srun: two train.py processes that have only
    SLURM's variables train one DDP model into one run dir named after the job and step."""
    from conftest import smoke_overrides

    port = _free_port_in_range()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_")
        and k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    }
    base.update(OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *smoke_overrides(tmp_path, pennfudan_root)],
            env={**base, **slurm_task(r, r, ntasks=2, nodelist="localhost", job=str(port - 20000))},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    runs = list((tmp_path / "outputs" / "train" / "smoke_maskrcnn_pennfudan").iterdir())
    assert [r.name for r in runs] == [f"slurm{port - 20000}.0"]
    assert (runs[0] / "checkpoints" / "last.pt").is_file() and (runs[0] / "metrics.json").is_file()
    assert "".join(outs).count("Epoch: [0] [0/1]") == 1  # 4 images, 2 ranks x batch 2: one step each, rank 0 prints


@pytest.mark.slow
def test_submitit_launcher_trains_on_a_fake_cluster(tmp_path, pennfudan_root):
    """docs/cluster.md's `python train.py -m hydra/launcher=slurm_gpu` against stand-ins for sbatch, srun and
    sacct (tests/fake_slurm.py): submitit writes the sbatch script, "2 nodes" x 1 task start through srun, meet
    through the rendezvous derived from SLURM's variables, and train one DDP model into the one run dir
    the launcher announced (multirun/<time>/0)."""
    import signal

    import fake_slurm
    from conftest import smoke_overrides

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    port = _free_port_in_range()
    fake_slurm.install(tmp_path / "bin")
    pidfile = tmp_path / "jobs.pid"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_")
        and k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    }
    env.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        OMP_NUM_THREADS="1",
        FAKE_SLURM_JOB_ID=str(port - 20000),
        FAKE_SLURM_NODELIST="localhost,127.0.0.1",
        FAKE_SLURM_PIDFILE=str(pidfile),
    )
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "hydra/launcher=slurm_gpu",
        "hydra.launcher.nodes=2",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=null",
        *smoke_overrides(tmp_path, pennfudan_root),
    ]
    try:
        result = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        for pid in pidfile.read_text().split() if pidfile.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)  # what is left of the fake jobs, if anything
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "train" / "smoke_maskrcnn_pennfudan" / "multirun").iterdir())
    assert len(sweeps) == 1
    run = sweeps[0] / "0"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "metrics.json").is_file()
    logs = sorted((sweeps[0] / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and "global_rank=1(2)" in logs[1].read_text()
    # 4 training images over 2 processes with batch 2: one step, so the two joined one DDP group.
    assert "Epoch: [0] [0/1]" in (run / "train.log").read_text()
