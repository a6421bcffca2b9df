"""Paths in configs may hold ``${MAIN_ROOT}`` (the recipes' YAMLs write them so, and path.sh sets it):
expanded here, with MAIN_ROOT defaulting to the checkout this package runs from, so that a program run
without path.sh reads the same files; any other variable that is not set is named, not left in the path."""
import os
import re
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand(value, what: str) -> Path:
    """``value`` with its environment variables expanded; ``what`` names the option in an error."""
    env = dict(os.environ)
    if "MAIN_ROOT" not in env and (CHECKOUT / "egs").is_dir():
        env["MAIN_ROOT"] = str(CHECKOUT)

    def variable(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in env:
            raise SystemExit(f"{what}: '{value}' uses ${name}, which is not set (source the recipe's path.sh, "
                             f"or write the path out)")
        return env[name]

    return Path(_VAR.sub(variable, str(value))).expanduser()
