"""Load a Hugging Face GPT-2 directory (config.json + model.safetensors) into tinyllm's GPT, and
save a GPT as one (`save_gpt2`), which transformers' `GPT2LMHeadModel.from_pretrained` reads.

GPT-2 and tinyllm's GPT are the same network with the same parameter names (`wte`, `wpe`,
`h.{i}.ln_1`, `h.{i}.attn.c_attn`, ...), so loading is renaming plus three facts:
- GPT-2's linear layers are `Conv1D`, whose weight is stored (in_features, out_features): the
  transpose of a Linear weight (out_features, in_features);
- its activation `gelu_new` is GELU's tanh approximation (our "gelu_tanh");
- its LayerNorm epsilon is `layer_norm_epsilon` (1e-5), and the output head is tied to `wte`.
Checkpoints name the weights with or without a `transformer.` prefix, and older ones carry the
causal mask as a buffer (`attn.bias`, `attn.masked_bias`), which we skip.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyllm.errors import ConfigError, UnsupportedError
from tinyllm.models.gpt import GPT, GPTConfig

_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_config(hf_config: dict) -> GPTConfig:
    """Return the GPTConfig of a GPT-2 config.json dict; ConfigError for what GPT cannot express."""
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise ConfigError(
            f"expected a GPT-2 config (model_type 'gpt2'), got model_type {hf_config.get('model_type')!r}"
        )
    n_embd = hf_config["n_embd"]
    if hf_config.get("n_inner") not in (None, 4 * n_embd):
        raise ConfigError(f"GPT's MLP is 4 * n_embd = {4 * n_embd} wide; this GPT-2 has n_inner {hf_config['n_inner']}")
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"GPT-2 activation {activation!r} is not supported; supported: {sorted(_ACTIVATIONS)}")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf_config.get(flag):
            raise ConfigError(f"GPT-2 option {flag}=True is not supported")
    if hf_config.get("scale_attn_weights") is False:
        raise ConfigError("GPT-2 option scale_attn_weights=False is not supported")
    return GPTConfig(
        vocab_size=hf_config["vocab_size"],
        block_size=hf_config.get("n_positions", hf_config.get("n_ctx", 1024)),
        n_layer=hf_config["n_layer"],
        n_head=hf_config["n_head"],
        n_embd=n_embd,
        dropout=0.0,
        bias=True,
        activation=_ACTIVATIONS[activation],
        positional="learned",
        layer_norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=hf_config.get("tie_word_embeddings", True),
    )


def gpt2_state_dict(tensors: dict, config: GPTConfig) -> dict:
    """Return {tinyllm GPT parameter name: float32 array} from GPT-2's safetensors tensors."""
    state = {}
    for name, array in tensors.items():
        name = name.removeprefix("transformer.")
        if name.endswith(("attn.bias", "attn.masked_bias")) and ".attn.c_" not in name:
            continue  # the causal-mask buffers of older checkpoints
        if name == "lm_head.weight" and config.tie_embeddings:
            continue  # tied: the same matrix as wte
        if name.endswith(_CONV1D):
            array = array.T  # Conv1D (in, out) -> Linear (out, in)
        state[name] = array.astype("float32")
    return state


def load_gpt2(directory) -> GPT:
    """Return a GPT (eval mode) with the weights of a Hugging Face GPT-2 directory holding
    config.json and model.safetensors; ConfigError if either is missing or does not fit."""
    from tinyllm.io.safetensors import load_file

    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ConfigError(f"GPT-2 directory {directory} lacks {path.name}")
    config = gpt2_config(json.loads(config_path.read_text()))
    state = gpt2_state_dict(load_file(weights_path), config)
    model = GPT(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ConfigError(f"GPT-2 weights do not fit GPT: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(state)
    return model.eval()


def save_gpt2(model: GPT, directory) -> Path:
    """Write model as a Hugging Face GPT-2 directory (config.json, model.safetensors) and return it.

    UnsupportedError for what GPT-2 cannot express: sinusoidal positions, Linear layers without bias.
    """
    from tinyllm.io.safetensors import save_file, write_atomic

    config = model.config
    if config.positional != "learned":
        raise UnsupportedError("GPT-2 has learned positions; a GPT with sinusoidal ones cannot be saved as GPT-2")
    if not config.bias:
        raise UnsupportedError("GPT-2's linear layers have biases; a GPT with bias=False cannot be saved as GPT-2")
    activation = {"gelu_tanh": "gelu_new", "gelu": "gelu"}[config.activation]
    hf_config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": activation,
        "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": 0.0,  # tinyllm's attention has no dropout on its probabilities
        "tie_word_embeddings": config.tie_embeddings,
    }
    tensors = {}
    for name, array in model.state_dict().items():
        if name.endswith(_CONV1D):
            array = array.T  # Linear (out, in) -> Conv1D (in, out)
        tensors[name if name == "lm_head.weight" else "transformer." + name] = array
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    write_atomic(directory / "config.json", json.dumps(hf_config, indent=2).encode("utf-8"))
    return directory
