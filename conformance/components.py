"""Which checks cover which upstream behaviour, and the order components are reported in.

``UPSTREAM_BEHAVIOURS`` follows the sections of ``docs/upstream-behaviour.md`` (the facts parity is
measured against); ``tests/conformance/test_registry.py`` fails when a section or behaviour has
no check, when a check id here does not exist, or when a registered check covers nothing here.
"""
from __future__ import annotations

# Report order: the components of the user's compatibility document first, then the rest.
COMPONENTS = (
    "Low-rank structure", "Fitness normalization", "Update formula", "Scaling factor",
    "Thread ID alternation", "Lora generation", "Update sign", "Noise reuse", "Group normalization",
    "Optimizer", "Key derivation", "Non-matrix noise", "Forward with noise", "Other noisers",
    "End-to-end training", "API contract", "Models", "LLM fine-tuning",
)

UPSTREAM_BEHAVIOURS: dict[str, dict[str, tuple[str, ...]]] = {
    "Keys": {
        "one key per leaf from split(base_key, n_leaves), in flatten order with sorted dict keys": ("keys.tree_order",),
        "scan_map axes split a leaf's key again, once per index; the update scans that axis":
            ("keys.scan_split", "update.scan_map"),
        "the example derives model, ES and data keys as fold_in(key(0), 0 | 1 | 2)": ("trajectory.mlp_e2e",),
    },
    "Noise for one population member": {
        "noise_reuse == 0 freezes the noise for every epoch": ("noise.reuse_zero_freezes",),
        "noise_reuse == k > 0 shares noise within blocks of k epochs (k = 1: fresh each epoch)":
            ("noise.reuse_blocks",),
        "member key fold_in(fold_in(k, true_epoch), thread_id // 2)": ("noise.thread_halving",),
        "+sigma for even thread ids, -sigma for odd; 2i and 2i+1 are one antithetic pair":
            ("signs.alternation", "signs.antithetic_pair"),
        "matrices: one normal((a + b, rank)) draw in the param dtype": ("noise.lora_factors",),
        "B = draw[:b], A = draw[b:]": ("noise.lora_slices",),
        "perturbation (+-sigma / sqrt(rank)) A @ B.T, sign and scale folded into A": ("noise.rank_scaling",),
        "rank is not clipped to min(a, b)": ("noise.rank_not_clipped",),
        "other params: normal(shape) * (+-sigma), no sqrt(rank)": ("noise.full_rank", "noise.bias_perturbed"),
        "freeze_nonlora skips non-matrix noise": ("noise.freeze_nonlora",),
        "EMB_PARAM and EXCLUDED: no noise, zero update": ("noise.emb_excluded",),
    },
    "Forward with noise": {
        "do_mm: x @ param.T + x @ B @ A.T": ("forward.do_mm",),
        "do_Tmm: x @ param + x @ A @ B.T": ("forward.do_Tmm",),
        "get_noisy_standard: param + full noise": ("forward.noisy_standard",),
        "iterinfo None means no noise": ("forward.no_noise_eval",),
    },
    "Fitness shaping": {
        "group_size 0: (raw - mean) / sqrt(var + 1e-5)": ("normalization.zscore", "normalization.eps_inside_sqrt"),
        "population variance (ddof=0)": ("normalization.population_variance",),
        "constant fitness gives zeros, not NaN": ("normalization.constant_fitness",),
        "group_size > 0: subtract group means, divide by the global std": (
            "normalization.group", "normalization.group_global_std"),
        "len(raw) must be a multiple of group_size": ("normalization.group_size_multiple",),
        "(measured, not in docs/upstream-behaviour.md) XLA on CPU flushes subnormal scores to zero": (
            "normalization.subnormal_scores",),
    },
    "Update": {
        "matrix grad einsum('nir,njr->ij', f * A, B) / N": ("update.lowrank", "update.mixed_tree",
                                                             "update.thread_sets"),
        "other params: mean_n(f_n * noise_n)": ("update.full",),
        "grad handed to the solver is -(g * sqrt(N)), cast to the param dtype": (
            "update.scale_sqrt_n", "update.ascent_sign", "update.low_precision"),
        "the update scales with sigma, not 1/sigma": ("update.sigma_scaling",),
        "solver(lr, **solver_kwargs), default optax.sgd": (
            "optimizer.default_sgd", "optimizer.noiser_solver", "optimizer.sgd"),
        "optax.adam / adamw semantics": ("optimizer.adam", "optimizer.adamw"),
        "optax.adamw defaults to weight_decay=1e-4 (torch AdamW: 1e-2)": ("optimizer.adamw_defaults",),
        "use_batched_update gives the plain path's result": ("update.batched_equals_plain",),
        "the end-to-end example's parameters after every epoch": ("trajectory.mlp_e2e",),
    },
    "The other noisers": {
        "open_es.OpenES": ("noiser.open_es",),
        "eggroll_baseline_subtraction.EggRollBS": ("noiser.eggrollbs",),
        "alteggroll.EggRoll": ("noiser.alteggroll",),
        "sparse.Sparse": ("noiser.sparse",),
        "base_noiser.Noiser (noop)": ("noiser.noop",),
        "'reeggroll' names EggRoll": ("noiser.reeggroll",),
    },
    "API contract": {
        "init_noiser returns (frozen, mutable) with upstream's keys; ({}, {}) for the base Noiser; adam's state "
        "after a step": ("api.init_noiser_state",),
        "do_updates returns (noiser_params, params), writes opt_state into the given dict, leaves params":
            ("api.do_updates_contract",),
        "one member's iterinfo as Python ints": ("api.one_member_call",),
        "public parameter names": ("api.keyword_names",),
    },
    "RL policies": {
        "ActorCriticMLP: init from split(key, 4), Embedding (Discrete) or MM (float32 Box) input, the activation "
        "before and after the MLP, optional critic head": ("models.rl_policy",),
        "Categorical(logits) for Discrete actions, MultivariateNormalDiag(mean, exp(log_std)) in float32 for Box "
        "actions; log_prob and sample(seed=key)": ("models.rl_policy",),
        "the log-std is a PARAM: perturbed with full-rank noise per member": ("models.rl_policy",),
    },
    "RWKV-7": {
        "load_from_torch of an official .pth: layer-stacked leaves, squeezed mixes, layer 0's value residual "
        "filled; emb/head EXCLUDED, projections and low-rank pairs MM_PARAM, the rest PARAM": (
            "models.rwkv7_forward", "models.rwkv7_es_step"),
        "the four variants' logits and state; every weight use noised per member": (
            "models.rwkv7_forward", "models.rwkv7_noisy_forward"),
        "state carried across calls, length, new_starts resets": ("models.rwkv7_state",),
        "do_updates through es_map/scan_map, one key per layer": ("models.rwkv7_es_step",),
    },
    "QRWKV6": {
        "load_from_torch of a Hugging Face state dict with the head size from the config: keys renamed, layers "
        "stacked, time_* squeezed; tables and time_maa_w2 EXCLUDED, projections and low-rank matrices MM_PARAM, "
        "the rest PARAM": ("models.qrwkv6_forward",),
        "RWKV-6 attention in Qwen2's slot (decay floor, grouped key/value heads, output gate); both variants' "
        "logits and state, every weight use noised per member": ("models.qrwkv6_forward",),
        "state carried across calls, length, new_starts resets": ("models.qrwkv6_forward",),
    },
    "LLM fine-tuning loop": {
        "keys: fold_in(master, 0/1/2); per member fold_in(fold_in(gen_key, epoch), thread), split per token":
            ("llm.generation", "llm.sampling"),
        "generation feeds the prompt, replaces 0s by the member's previous sample and returns what it fed; "
        "categorical(logits / temperature) or argmax": ("llm.generation", "llm.sampling"),
        "prompts repeated G times per epoch, fitness normalised in groups of G, update with (full(N, e), arange(N))":
            ("llm.es_epoch", "llm.task_fitness"),
    },
    "Side effects to know": {},
    "What else upstream ships": {},
}

# Behaviours deliberately not checked, with why.
EXEMPT: dict[str, str] = {
    "Side effects to know": ("upstream's trace-time print and its package __init__ imports are not numbers; the "
                             "upstream adapter silences the print and loads modules without the __init__"),
    "What else upstream ships": ("RWKV-7, QRWKV6's forward and the RL policies are checked under Models and the "
                                 "fine-tuning loop under its own section; QRWKV6's ES updates, the tokenizers and the "
                                 "text bandit tasks are proven against upstream by tests/upstream and tests/models, "
                                 "not yet by vectors; the GRPO baseline and sft_evolution are not built"),
}
