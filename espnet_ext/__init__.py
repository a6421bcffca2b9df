"""ParaAlign: ESPnet extension for aligning speech encoders to a frozen LLM."""
from espnet_ext.deferred_imports import defer_unused

__version__ = "0.1.0"
defer_unused()  # before any espnet2 import: its unused text front-ends load only when used
