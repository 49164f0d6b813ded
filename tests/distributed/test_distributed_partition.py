"""distributed.partition and distributed.checksum: the pieces that need no process group."""
import pytest
import torch

from eggroll_torch.distributed import member_ranges, state_checksum


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
    with pytest.raises(ValueError, match="fewer than the 4 ranks"):
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
