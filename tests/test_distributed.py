"""The all-gather contrastive losses on two real gloo processes: loss and every gradient equal one process's on the
same global batch; the plain gather's gradient error; sharding without overlap; clear errors; no process left."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmcourse import distributed as D
from mmcourse.losses import clip_loss, siglip_loss
from mmcourse.losses.distributed import distributed_clip_loss, distributed_siglip_loss, gather_features


def _probe():
    """Everything one pair of processes checks (spawned processes import this module)."""
    out = D.check_all(global_batch=16, memory_batch=128)
    try:
        gather_features(torch.zeros(2 + torch.distributed.get_rank(), 3))
    except ValueError as error:
        out["uneven"] = str(error)
    return out


def _fail_on_rank_one():
    if torch.distributed.get_rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    torch.distributed.barrier()  # rank 0 waits for a partner that never comes: it must be stopped, not hang


@pytest.fixture(scope="module")
def results():
    return D.launch(_probe, world_size=2)


@pytest.mark.parametrize("loss", ["clip", "siglip"])
@pytest.mark.parametrize("local", [False, True], ids=["global", "local"])
def test_two_processes_give_the_single_process_loss_and_gradients(results, loss, local):
    for rank in (0, 1):
        r = results[rank][loss, local, True]
        assert r["loss_diff"] <= 1e-5, r
        assert r["grad_diff"] <= 1e-5 * max(1.0, r["grad_max"]), r


@pytest.mark.parametrize("loss", ["clip", "siglip"])
@pytest.mark.parametrize("local", [False, True], ids=["global", "local"])
def test_a_gather_without_gradient_gets_the_gradients_wrong(results, loss, local):
    r = results[0][loss, local, False]
    assert r["loss_diff"] <= 1e-5 and r["grad_diff"] > 1e-3 * r["grad_max"], r  # the loss is right, its gradient not


def test_local_loss_keeps_less_for_backward(results):
    memory = results[0]["memory"]
    assert memory[True] < 0.75 * memory[False], memory  # b x N instead of N x N logits


def test_shards_are_disjoint_equal_and_cover_all_but_the_tail(results):
    a, b = ([i for batch in results[r]["shards"] for i in batch] for r in (0, 1))
    assert results[0]["shards"] != results[1]["shards"]
    assert len(a) == len(b) == 24 and not set(a) & set(b)  # 50 examples: 25 per rank, 6 batches of 4
    assert all(len(batch) == 4 for r in (0, 1) for batch in results[r]["shards"])


def test_uneven_local_batches_are_a_clear_error(results):
    assert "uneven local batches across ranks [2, 3]" in results[0]["uneven"]


def _children() -> list[str]:
    """Command lines of the processes whose parent is this one (zombies included), but multiprocessing's
    resource tracker, one helper per parent that lives as long as the parent does."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append((stat.parent / "cmdline").read_text().replace("\0", " "))
    return [c for c in found if "resource_tracker" not in c]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_a_failing_rank_is_reported_first_and_no_process_is_left():
    with pytest.raises(RuntimeError, match="rank 1 of 2 failed first(.|\n)*rank 1 fails on purpose"):
        D.launch(_fail_on_rank_one, world_size=2, timeout=30)
    assert _children() == []


def test_launch_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="backend 'mpi'"):
        D.launch(_probe, backend="mpi")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="nccl"):
            D.launch(_probe, backend="nccl")
    with pytest.raises(ValueError, match="importable"):
        D.launch(lambda: 1)
    with pytest.raises(ValueError, match="world_size"):
        D.launch(_probe, world_size=0)


def test_outside_a_process_group_the_losses_are_the_plain_ones():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    for local in (False, True):
        torch.testing.assert_close(distributed_clip_loss(x, y, 10.0, local_loss=local), clip_loss(x, y, 10.0))
        torch.testing.assert_close(distributed_siglip_loss(x, y, 10.0, -10.0, local_loss=local),
                                   siglip_loss(x, y, 10.0, -10.0))
    batches = D.shard(10, 3)  # one process: every example, in 3 full batches of 3 (the last one dropped)
    assert len(batches) == 3 and all(len(b) == 3 for b in batches) and len({i for b in batches for i in b}) == 9


def test_the_torchrun_entry_runs_the_check_on_two_processes():
    env = {**os.environ, "MMCOURSE_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "mmcourse.distributed"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if "largest gradient diff" in line]
    assert len(lines) == 4, run.stdout
    assert all(float(line.rsplit(" ", 1)[1]) <= 1e-5 for line in lines), lines
