"""Config schema, validation and composition helpers."""

from insseg.config.compose import CONF_DIR, compose_config
from insseg.config.schema import Config, register_configs
from insseg.config.validate import validate_config

__all__ = ["Config", "register_configs", "validate_config", "compose_config", "CONF_DIR"]
