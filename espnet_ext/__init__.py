"""ParaAlign: ESPnet extension for aligning speech encoders to a frozen LLM."""
__version__ = "0.1.0"
