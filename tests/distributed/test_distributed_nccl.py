"""distributed.* on two GPUs with NCCL: the same checks as the gloo tests, against a
single-process run on cuda:0. Run on a machine with two GPUs (see the README)."""
import pytest
import torch
import torch.distributed as dist

import dist_workers
from conformance.tolerances import assert_tree_parity
from dist_launch import launch, results_of
from eggroll_torch import tree

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_nccl_available() and torch.cuda.device_count() >= 2),
        reason="needs NCCL and a second CUDA device",
    ),
]


def _on_cpu(state):
    return tree.map(lambda leaf: leaf.cpu() if isinstance(leaf, torch.Tensor) else leaf, state)


def test_distributed_nccl_bit_identity_and_checkpoints(tmp_path):
    device = torch.device("cuda", 0)
    reference = {config: dist_workers.reference_states(4 if config == "eggroll" else 2, config, device)
                 for config in dist_workers.CONFIGS}
    reference["blocks"] = dist_workers.reference_states(2, device=device, block=dist_workers.BLOCK)
    checkpoint = tmp_path / "single_epoch2.pt"
    torch.save(reference["eggroll"][2], checkpoint)
    run = launch("conformance", 2, tmp_path, deadline_s=300, backend="nccl", single_checkpoint=str(checkpoint))
    want = {config: _on_cpu(states[-1]) for config, states in reference.items()}
    for rank, result in enumerate(results_of(run)):
        who = f"NCCL rank {rank}"
        assert result["update_mode"] == "sharded"
        assert_tree_parity(result["final"], want["eggroll"], "bits",
                           what=f"{who}: 4 epochs vs single process on cuda:0")
        assert_tree_parity(result["resumed_from_single"], want["eggroll"], "bits", what=f"{who}: resumed checkpoint")
        assert_tree_parity(result["open_es", "auto"], want["open_es"], "bits", what=f"{who}: OpenES")
        for update in ("sharded", "replicated"):
            assert_tree_parity(result["excluded_adamw", update], want["excluded_adamw"], "bits",
                               what=f"{who}: update={update}")
        assert_tree_parity(result["blocks"], want["blocks"], "bits", what=f"{who}: members_per_call=4")
        assert result["divergence"]["type"] == "DivergenceError"
    assert results_of(run)[0]["failing_fitness"]["type"] == "RankFailureError"


def test_distributed_nccl_dead_rank_stops_peer(tmp_path):
    timeout_s = 15.0
    run = launch("failure", 2, tmp_path, deadline_s=180, backend="nccl", mode="die", pg_timeout_s=timeout_s,
                 watchdog_s={0: timeout_s, 1: timeout_s})
    assert run["exitcodes"][1] == 17
    result = run["results"][0]
    assert result is not None, f"rank 0 wrote no result (exit code {run['exitcodes'][0]}): NCCL aborted it"
    assert "uncaught" not in result, result["uncaught"]["traceback"]
    assert result["error"]["type"] == "RankFailureError"
    assert result["error"]["after_s"] < timeout_s + 30.0
