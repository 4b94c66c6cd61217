"""Every config dataclass round-trips through a dict and rejects unknown or missing fields."""

import json

import pytest

from tinyllm.errors import ConfigError
from tinyllm.models import GPTConfig, LlamaConfig
from tinyllm.train.config import TrainConfig

CONFIGS = [
    GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
    LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_embd=8, n_head=2, n_kv_head=1, ffn_dim=16),
    TrainConfig(),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_round_trips_through_json(config):
    assert type(config).from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_unknown_fields_are_a_config_error_naming_them(config):
    with pytest.raises(ConfigError, match="bogus_field"):
        type(config).from_dict({**config.to_dict(), "bogus_field": 1})


def test_a_missing_required_field_is_a_config_error():
    with pytest.raises(ConfigError, match="LlamaConfig"):
        LlamaConfig.from_dict({"vocab_size": 11})
