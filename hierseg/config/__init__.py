"""Typed configuration: the loading machinery (params) and the engine's experiment config."""

from hierseg.config.params import ConfigError, check, load, merge, parse_override, save, to_dict

__all__ = ["ConfigError", "check", "load", "merge", "parse_override", "save", "to_dict"]
