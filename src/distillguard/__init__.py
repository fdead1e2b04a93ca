"""distillguard: find, link, stop and prove distillation campaigns in LLM API traffic."""

__version__ = "0.1.0"
