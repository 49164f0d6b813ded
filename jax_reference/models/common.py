"""Building blocks for models whose parameters a noiser perturbs.

A model's ``params`` is a nested dict; alongside it live a ``scan_map`` and an ``es_map`` with
one entry per leaf, and ``simple_es_tree_key`` gives every leaf its own random key. Blocks call
the noiser for every parameter use, so the same forward code serves the unperturbed model
(``iterinfo=None``) and any population member.
"""
import jax
import jax.numpy as jnp

from .base_model import CommonInit, CommonParams, Model

# es_map classes: how a noiser treats a leaf.
PARAM = 0  # full-rank noise (biases, norms, ...)
MM_PARAM = 1  # matrix used in a matmul: the noiser's matrix noise (low rank for EGGROLL)
EMB_PARAM = 2  # embedding table: looked up through do_emb, never updated
EXCLUDED = 3  # never perturbed by the update, never updated

__all__ = [
    "CommonInit", "CommonParams", "Model", "PARAM", "MM_PARAM", "EMB_PARAM", "EXCLUDED", "layer_norm",
    "ACTIVATIONS", "recursive_scan_split", "simple_es_tree_key", "merge_inits", "merge_frozen",
    "call_submodule", "Parameter", "MM", "TMM", "Embedding", "Linear", "MLP",
]


def layer_norm(x, eps=1e-5):
    """Normalise the last axis to zero mean and unit population variance; no learned scale."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    std = jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + eps)
    return (x - mean) / std


def _relu_of_layer_norm(x):
    return jax.nn.relu(layer_norm(x))


ACTIVATIONS = {
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "pqn": _relu_of_layer_norm,
}


def recursive_scan_split(param, base_key, scan_tuple):
    """Key(s) for one leaf: ``base_key`` itself when ``scan_tuple == ()``, else an array of keys.

    For ``scan_tuple = (ax0, ax1, ...)`` the key is split into ``param.shape[ax0]`` keys and each
    of those recursively by the remaining axes, giving a key array of shape
    ``(param.shape[ax0], param.shape[ax1], ...)`` for a parameter stacked along those axes.
    """
    if len(scan_tuple) == 0:
        return base_key
    split_keys = jax.random.split(base_key, param.shape[scan_tuple[0]])
    return jax.vmap(recursive_scan_split, in_axes=(None, 0, None))(param, split_keys, scan_tuple[1:])


def simple_es_tree_key(params, base_key, scan_map):
    """A key tree matching ``params``: ``split(base_key, n_leaves)`` dealt out in ``jax.tree.flatten``
    order (dict keys sorted, so ``"10"`` comes before ``"2"``), then split per stacked axis."""
    leaves, treedef = jax.tree.flatten(params)
    leaf_keys = jax.tree.unflatten(treedef, jax.random.split(base_key, len(leaves)))
    return jax.tree.map(recursive_scan_split, params, leaf_keys, scan_map)


def merge_inits(**kwargs):
    """Combine named :class:`CommonInit` s into one whose trees are dicts keyed by those names.

    ``frozen_params`` keeps only the non-None entries and is None if none remain.
    """
    params = {name: init.params for name, init in kwargs.items()}
    scan_map = {name: init.scan_map for name, init in kwargs.items()}
    es_map = {name: init.es_map for name, init in kwargs.items()}
    frozen_params = {name: init.frozen_params for name, init in kwargs.items() if init.frozen_params is not None}
    return CommonInit(frozen_params or None, params, scan_map, es_map)


def merge_frozen(common, **kwargs):
    """``common`` with ``kwargs`` added to (and overriding) its ``frozen_params`` dict."""
    return common._replace(frozen_params=(common.frozen_params or {}) | kwargs)


def call_submodule(cls, name, common_params, *args, **kwargs):
    """Run ``cls._forward`` on the ``name`` entry of the params, key and frozen trees."""
    frozen = common_params.frozen_params
    return cls._forward(
        common_params._replace(
            frozen_params=frozen[name] if frozen and name in frozen else None,
            params=common_params.params[name],
            es_tree_key=common_params.es_tree_key[name],
        ),
        *args, **kwargs,
    )


def _noiser_args(common_params):
    """The leading arguments every noiser primitive takes, for this block's own leaf."""
    return (common_params.frozen_noiser_params, common_params.noiser_params, common_params.params,
            common_params.es_tree_key, common_params.iterinfo)


class Parameter(Model):
    """A free-standing tensor (``PARAM``): the forward returns its noised value."""

    @classmethod
    def rand_init(cls, key, shape, scale, raw_value, dtype, *args, **kwargs):
        """``raw_value`` cast to ``dtype`` if given, else ``normal(key, shape) * scale`` (float32) cast."""
        if raw_value is not None:
            params = raw_value.astype(dtype=dtype)
        else:
            params = (jax.random.normal(key, shape) * scale).astype(dtype=dtype)
        return CommonInit(None, params, (), PARAM)

    @classmethod
    def _forward(cls, common_params, *args, **kwargs):
        return common_params.noiser.get_noisy_standard(*_noiser_args(common_params))


class MM(Model):
    """``x @ W.T`` with ``W`` of shape ``(out_dim, in_dim)`` (``MM_PARAM``)."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        """``W = normal(key, (out_dim, in_dim)) / sqrt(in_dim)`` drawn in float32, then cast."""
        scale = 1 / jnp.sqrt(in_dim)
        params = (jax.random.normal(key, (out_dim, in_dim)) * scale).astype(dtype=dtype)
        return CommonInit(None, params, (), MM_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_mm(*_noiser_args(common_params), x)


class TMM(Model):
    """``x @ W`` with ``W`` of shape ``(in_dim, out_dim)`` (``MM_PARAM``)."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        """``W = normal(key, (in_dim, out_dim), dtype) / sqrt(in_dim)``, drawn directly in ``dtype``."""
        scale = 1 / jnp.sqrt(in_dim)
        params = jax.random.normal(key, (in_dim, out_dim), dtype=dtype) * scale
        return CommonInit(None, params, (), MM_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_Tmm(*_noiser_args(common_params), x)


class Embedding(Model):
    """Row lookup in a ``(in_dim, out_dim)`` table (``EMB_PARAM``)."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        """Table ``normal(key, (in_dim, out_dim), dtype) / sqrt(in_dim)``."""
        scale = 1 / jnp.sqrt(in_dim)
        params = jax.random.normal(key, (in_dim, out_dim), dtype=dtype) * scale
        return CommonInit(None, params, (), EMB_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_emb(*_noiser_args(common_params), x)


class Linear(Model):
    """``{"weight": MM, "bias": Parameter}`` (bias optional, initialised to zeros)."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, use_bias, dtype, *args, **kwargs):
        """Weight from ``key``; the bias ignores the key and starts at zero."""
        parts = {"weight": MM.rand_init(key, in_dim, out_dim, dtype)}
        if use_bias:
            parts["bias"] = Parameter.rand_init(key, None, None, jnp.zeros(out_dim, dtype=dtype), dtype)
        return merge_inits(**parts)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        out = call_submodule(MM, "weight", common_params, x)
        if "bias" in common_params.params:
            out = out + call_submodule(Parameter, "bias", common_params)
        return out


class MLP(Model):
    """Linear layers named ``"0"``, ``"1"``, ... with an activation between consecutive layers.

    ``frozen_params = {"activation": name}`` picks from :data:`ACTIVATIONS`.
    """

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, hidden_dims, use_bias, activation, dtype, *args, **kwargs):
        """Layer ``t`` gets ``split(key, n_layers)[t]``; widths ``in_dim -> *hidden_dims -> out_dim``."""
        widths = [in_dim] + list(hidden_dims) + [out_dim]
        layer_keys = jax.random.split(key, len(widths) - 1)
        layers = {
            str(t): Linear.rand_init(layer_keys[t], widths[t], widths[t + 1], use_bias, dtype)
            for t in range(len(widths) - 1)
        }
        return merge_frozen(merge_inits(**layers), activation=activation)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        n_layers = len(common_params.params)
        for t in range(n_layers):
            x = call_submodule(Linear, str(t), common_params, x)
            if t != n_layers - 1:
                x = ACTIVATIONS[common_params.frozen_params["activation"]](x)
        return x
