"""Configuration: YAML loading, the validated model, secrets, and the SLA catalog."""

from config.catalog import Catalog, ClockSpec, PolicySpec, SeveritySpec
from config.errors import ConfigError
from config.loader import LoadedConfig, load_catalog, load_config, load_config_text
from config.model import Config, ServiceConfig

__all__ = [
    "Catalog",
    "ClockSpec",
    "Config",
    "ConfigError",
    "LoadedConfig",
    "PolicySpec",
    "ServiceConfig",
    "SeveritySpec",
    "load_catalog",
    "load_config",
    "load_config_text",
]
