"""A labelled world of honest users and hidden distillation campaigns, for development and trials."""

from distillguard.simulate.world import simulate

__all__ = ["simulate"]
