"""distributed.*: the population over gloo ranks on the CPU, checked against single-process runs.

Each launch forks a few ranks (see ``dist_launch``) bounded by a deadline, so a hang fails the
test instead of stalling the suite.
"""
import pytest
import torch

import dist_workers
from conformance.tolerances import assert_tree_parity
from dist_launch import launch, results_of


@pytest.fixture(scope="module")
def reference():
    """Single-process states after epochs 0..4 (EGGROLL) and 0..2 (the other configurations)."""
    states = {config: dist_workers.reference_states(4 if config == "eggroll" else 2, config)
              for config in dist_workers.CONFIGS}
    states["blocks"] = dist_workers.reference_states(2, block=dist_workers.BLOCK)
    return states


@pytest.fixture(scope="module")
def conformance_run(reference, tmp_path_factory):
    """``world_size -> (launch result, its directory)``, each world size launched once."""
    runs = {}

    def get(world_size):
        if world_size not in runs:
            out = tmp_path_factory.mktemp(f"world{world_size}")
            checkpoint = out / "single_epoch2.pt"
            torch.save(reference["eggroll"][2], checkpoint)
            runs[world_size] = launch("conformance", world_size, out, deadline_s=120,
                                      single_checkpoint=str(checkpoint)), out
        return runs[world_size]

    return get


WORLD_SIZES = [1, 2, pytest.param(4, marks=pytest.mark.slow)]


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_distributed_bit_identity_with_single_process(world_size, reference, conformance_run):
    run, _ = conformance_run(world_size)
    for rank, result in enumerate(results_of(run)):
        who = f"rank {rank} of {world_size}"
        assert result["update_mode"] == ("replicated" if world_size == 1 else "sharded")
        assert_tree_parity(result["final"], reference["eggroll"][4], "bits", what=f"{who}: 4 epochs vs single process")
        assert_tree_parity(result["open_es", "auto"], reference["open_es"][2], "bits", what=f"{who}: OpenES")
        for update in ("sharded", "replicated"):
            assert_tree_parity(result["excluded_adamw", update], reference["excluded_adamw"][2], "bits",
                               what=f"{who}: EXCLUDED bias, AdamW, update={update}")
        assert_tree_parity(result["blocks"], reference["blocks"][2], "bits", what=f"{who}: members_per_call=4")
        assert_tree_parity(result["redrawn", "sharded"], reference["eggroll"][2], "bits",
                           what=f"{who}: keep_noise=False, sharded update")


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_distributed_checkpoint_resumes_across_world_sizes(world_size, reference, conformance_run):
    run, out = conformance_run(world_size)
    for rank, result in enumerate(results_of(run)):
        assert_tree_parity(result["resumed_from_single"], reference["eggroll"][4], "bits",
                           what=f"rank {rank} of {world_size}: single-process checkpoint resumed for 2 epochs")
    trainer = dist_workers.make_trainer()
    trainer.load_state_dict(torch.load(out / "distributed_epoch2.pt"))
    fitness = dist_workers.fitness_on("cpu")
    for _ in range(2):
        trainer.step(lambda population: fitness(population, range(dist_workers.POPULATION)))
    assert_tree_parity(trainer.state_dict(), reference["eggroll"][4], "bits",
                       what=f"checkpoint of a {world_size}-rank run resumed in one process")


def test_distributed_failing_fitness_and_divergence_reach_every_rank(conformance_run):
    rank0, rank1 = results_of(conformance_run(2)[0])
    assert rank1["failing_fitness"]["type"] == "ValueError"
    assert rank0["failing_fitness"]["type"] == "RankFailureError"
    assert "ranks [1] failed" in rank0["failing_fitness"]["message"]
    assert rank0["unchanged_after_failure"] and rank1["unchanged_after_failure"]
    for result in (rank0, rank1):
        assert result["divergence"]["type"] == "DivergenceError"
        assert "ranks [1] disagree with rank 0" in result["divergence"]["message"]
