"""distributed.*: the pieces that need no process group (partition, checksum, fitness checks,
update sharding plan, launch errors, watchdog)."""
import signal
import threading
import time

import pytest
import torch
from torch import nn

from eggroll_torch.distributed import (
    DistributedTrainer,
    RankFailureError,
    blocks_of,
    init_distributed,
    member_ranges,
    state_checksum,
)
from eggroll_torch.distributed.fitness_exchange import check_local_fitness
from eggroll_torch.distributed.sharded_update import assign_owners, sharding_problem
from eggroll_torch.distributed.watchdog import Watchdog
from eggroll_torch.nn import EggrollTrainer


@pytest.mark.parametrize("world_size", range(1, 9))
def test_distributed_partition_covers_in_whole_pairs(world_size):
    for population_size in range(2 * world_size - 1, 70):
        if (population_size + 1) // 2 < world_size:
            continue
        ranges = member_ranges(population_size, world_size)
        assert len(ranges) == world_size
        assert [i for r in ranges for i in r] == list(range(population_size))
        assert all(r.start % 2 == 0 and len(r) > 0 for r in ranges)
        pairs = [(len(r) + 1) // 2 for r in ranges]
        assert max(pairs) - min(pairs) <= 1


def test_distributed_partition_sizes_worked_example():
    # 18 members = 9 pairs over 4 ranks: 3 + 2 + 2 + 2 pairs, the extra pair on rank 0.
    assert member_ranges(18, 4) == [range(0, 6), range(6, 10), range(10, 14), range(14, 18)]
    # 7 members = 3 full pairs and the unpaired thread 6, which stays with the last rank.
    assert member_ranges(7, 2) == [range(0, 4), range(4, 7)]


def test_distributed_partition_rejects_fewer_pairs_than_ranks():
    with pytest.raises(ValueError, match="3 blocks of 2 members, fewer than the 4 ranks"):
        member_ranges(6, 4)
    with pytest.raises(TypeError, match="world_size must be an integer"):
        member_ranges(8, 2.0)
    with pytest.raises(ValueError, match="population_size must be >= 1"):
        member_ranges(0, 1)


def _state():
    return {
        "epoch": 3,
        "params": {"w": torch.linspace(-1, 1, 12).reshape(3, 4), "b": torch.arange(5, dtype=torch.bfloat16)},
        "keys": {"w": torch.tensor([1, 2], dtype=torch.uint32)},
        "noiser_state": [torch.zeros(3, 4), 0.5],
    }


def test_distributed_checksum_equal_states_agree():
    assert state_checksum(_state()) == state_checksum(_state())


def test_distributed_checksum_sees_every_single_bit_flip():
    base = state_checksum(_state())
    for name in ("w", "b"):
        for index in range(_state()["params"][name].numel()):
            for bit in (0, 7, 15):
                state = _state()
                raw = state["params"][name].view(-1).view(torch.int16)
                raw[index] ^= 1 << bit
                assert state_checksum(state) != base, (name, index, bit)


def test_distributed_checksum_sees_dtype_order_and_numbers():
    base = state_checksum(_state())
    reinterpreted = _state()
    reinterpreted["params"]["w"] = reinterpreted["params"]["w"].view(torch.int32)
    assert state_checksum(reinterpreted) != base
    swapped = _state()
    swapped["params"]["w"] = swapped["params"]["w"].flip(0)
    assert state_checksum(swapped) != base
    later = _state()
    later["epoch"] = 4
    assert state_checksum(later) != base


def test_distributed_fitness_exchange_rejects_bad_local_scores():
    members = range(4, 8)
    good = torch.zeros(4)
    assert check_local_fitness(good, members, torch.device("cpu")) is good
    with pytest.raises(TypeError, match="must return a torch.Tensor of shape \\(4,\\)"):
        check_local_fitness([0.0] * 4, members, torch.device("cpu"))
    with pytest.raises(TypeError, match="returned dtype torch.int64"):
        check_local_fitness(torch.zeros(4, dtype=torch.int64), members, torch.device("cpu"))
    with pytest.raises(ValueError, match="it was given 4 members \\(thread ids 4..7\\)"):
        check_local_fitness(torch.zeros(8), members, torch.device("cpu"))


def test_distributed_sharded_update_owner_assignment():
    # Greedy by decreasing cost to the least loaded rank, worked by hand:
    # a(9) -> 0; b(5) -> 1; c(4) -> 2; d(1) -> 2 (loads 9, 5, 4); free parameters go nowhere.
    owners = assign_owners({"a": 9, "b": 5, "c": 4, "d": 1, "e": 0}, 3)
    assert owners == {"a": 0, "b": 1, "c": 2, "d": 2, "e": None}
    # Equal costs: ties go by path, then to the lowest rank.
    assert assign_owners({"w2": 7, "w1": 7, "w3": 7, "w0": 7}, 2) == {"w0": 0, "w1": 1, "w2": 0, "w3": 1}


def _trainer(**options):
    torch.manual_seed(0)
    return EggrollTrainer(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), sigma=0.1, lr=0.1,
                          population_size=8, rank=1, **options)


def test_distributed_sharded_update_refuses_what_it_cannot_split():
    assert sharding_problem(_trainer()) is None
    assert "use_batched_update=True" in sharding_problem(_trainer(noiser_kwargs={"use_batched_update": True}))
    assert "no per-parameter estimator" in sharding_problem(_trainer(noiser="noop"))


def test_distributed_launch_errors_before_joining(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="launch with torchrun"):
        init_distributed()
    with pytest.raises(RuntimeError, match="call eggroll_torch.distributed.init_distributed"):
        DistributedTrainer(_trainer())
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(ValueError, match="backend must be one of"):
        init_distributed("mpi")
    with pytest.raises(ValueError, match="timeout_s must be a finite number"):
        init_distributed("gloo", timeout_s=0)
    assert not torch.distributed.is_initialized()


def test_distributed_watchdog_interrupts_a_stuck_section():
    watchdog = Watchdog(0.3)
    with watchdog.armed("quick section"):
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(RankFailureError, match="stuck section ran longer than the 0.3 s timeout"):
        with watchdog.armed("stuck section"):
            time.sleep(30)
    assert time.monotonic() - started < 5
    with watchdog.armed("quick section after an interrupt"):
        time.sleep(0.01)


def test_distributed_watchdog_interrupts_where_sigint_is_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(RankFailureError, match="ignored section ran longer"):
            with Watchdog(0.3).armed("ignored section"):
                time.sleep(30)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_distributed_watchdog_refuses_other_threads():
    errors = []

    def body():
        try:
            with Watchdog(1.0).armed("in a thread"):
                pass
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert errors and "run the training loop in the main thread" in errors[0]


def test_distributed_partition_blocks_for_members_per_call():
    # 18 members in blocks of 4 = 5 blocks (the last of 2) over 2 ranks: 3 + 2 blocks.
    assert member_ranges(18, 2, block=4) == [range(0, 12), range(12, 18)]
    assert blocks_of(range(12, 18), 4) == [range(12, 16), range(16, 18)]
    with pytest.raises(ValueError, match="block must be even"):
        member_ranges(18, 2, block=3)


class _NeverDone:
    """A collective whose peer never answers (what NCCL shows after a peer died)."""

    def is_completed(self):
        return False

    def wait(self):
        raise AssertionError("wait() must not be reached before the work completes")


class _DoneAfter:
    def __init__(self, polls):
        self.polls = polls
        self.waited = False

    def is_completed(self):
        self.polls -= 1
        return self.polls <= 0

    def wait(self):
        self.waited = True


def test_distributed_collective_wait_times_out_on_the_host():
    from eggroll_torch.distributed.collectives import _wait

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="process group's timeout"):
        _wait(_NeverDone(), 0.2)
    assert 0.2 <= time.monotonic() - started < 5.0
    done = _DoneAfter(polls=5)
    _wait(done, 10.0)
    assert done.waited


def test_distributed_group_timeout_is_the_process_groups(tmp_path):
    """Read in a fresh process: a process group is global to the interpreter."""
    import subprocess
    import sys

    script = (
        "import datetime, torch, torch.distributed as dist\n"
        "from eggroll_torch.distributed.collectives import group_timeout_s\n"
        f"dist.init_process_group('gloo', init_method='file://{tmp_path}/store', rank=0, world_size=1,\n"
        "                        timeout=datetime.timedelta(seconds=37))\n"
        "print(group_timeout_s(None, torch.device('cpu')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) == 37.0
