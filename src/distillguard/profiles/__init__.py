"""Account profiles: one row per account, from its request signals and metadata."""

from distillguard.profiles.accounts import build_profiles

__all__ = ["build_profiles"]
