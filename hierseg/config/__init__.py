"""Typed configuration: the loading machinery (params) and the engine's experiment config."""

from hierseg.config.params import ConfigError, load, merge, parse_override, save, to_dict

__all__ = ["ConfigError", "load", "merge", "parse_override", "save", "to_dict"]
