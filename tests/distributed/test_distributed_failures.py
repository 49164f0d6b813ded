"""distributed.rank_failure: a rank that dies or never delivers its fitnesses ends the run with
RankFailureError on every rank within the timeout, and the checkpoint written before resumes."""
import torch

import dist_workers
from conformance.tolerances import assert_tree_parity
from dist_launch import launch

TIMEOUT_S = 3.0
# Scheduling slack on a loaded 2-core machine; a hang would take the launch deadline instead.
SLACK_S = 5.0


def _error(run, rank):
    result = run["results"][rank]
    assert result is not None, f"rank {rank} wrote no result (exit code {run['exitcodes'][rank]})"
    assert "uncaught" not in result, result.get("uncaught", {}).get("traceback")
    assert result["error"] is not None, f"rank {rank} finished the broken epoch without an error"
    return result["error"]


def test_distributed_rank_failure_dead_rank_stops_peers_and_checkpoint_resumes(tmp_path):
    run = launch("failure", 2, tmp_path, deadline_s=60, mode="die", pg_timeout_s=TIMEOUT_S,
                 watchdog_s={0: TIMEOUT_S, 1: TIMEOUT_S})
    assert run["exitcodes"] == [0, 17]
    error = _error(run, 0)
    assert error["type"] == "RankFailureError" and error["after_s"] < TIMEOUT_S + SLACK_S
    assert "resume from the last checkpoint" in error["message"]

    trainer = dist_workers.make_trainer()
    trainer.load_state_dict(torch.load(tmp_path / "before_failure.pt"))
    assert trainer.epoch == 1
    fitness = dist_workers.fitness_on("cpu")
    for _ in range(3):
        trainer.step(lambda population: fitness(population, range(dist_workers.POPULATION)))
    assert_tree_parity(trainer.state_dict(), dist_workers.reference_states(4)[4], "bits",
                       what="resumed after the failure")


def test_distributed_rank_failure_stuck_fitness_is_interrupted_everywhere(tmp_path):
    run = launch("failure", 2, tmp_path, deadline_s=60, mode="hang", sleep_s=600.0, pg_timeout_s=TIMEOUT_S,
                 watchdog_s={0: TIMEOUT_S, 1: TIMEOUT_S})
    assert run["exitcodes"] == [0, 0]
    stuck, waiting = _error(run, 1), _error(run, 0)
    assert stuck["type"] == "RankFailureError" and "ran longer than the 3 s timeout" in stuck["message"]
    assert waiting["type"] == "RankFailureError"
    assert stuck["after_s"] < TIMEOUT_S + SLACK_S and waiting["after_s"] < TIMEOUT_S + SLACK_S


def test_distributed_rank_failure_missing_fitness_times_out_peers(tmp_path):
    # Rank 1 runs without a watchdog and delivers nothing until after the timeout: rank 0 must
    # give up after the process group's timeout, not wait for it.
    run = launch("failure", 2, tmp_path, deadline_s=60, mode="hang", sleep_s=TIMEOUT_S + 1.5,
                 pg_timeout_s=TIMEOUT_S, watchdog_s={0: TIMEOUT_S, 1: None})
    waiting = _error(run, 0)
    assert waiting["type"] == "RankFailureError" and "did not complete" in waiting["message"]
    assert TIMEOUT_S * 0.9 <= waiting["after_s"] < TIMEOUT_S + SLACK_S
    assert _error(run, 1)["type"] == "RankFailureError"
