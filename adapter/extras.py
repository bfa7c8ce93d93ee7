"""Which pyproject extra brings a module the adapter imports only for some commands, so that a
command run without it says what to install instead of a traceback."""

from __future__ import annotations

# The root module a command imports lazily -> the extra of the `energyd` package that ships it.
EXTRA_OF_MODULE = {
    "matplotlib": "eval",
    "tqdm": "eval",
    "torch": "profile",
    "gurobipy": "gurobi",
}


def missing_extra_message(exc: ModuleNotFoundError, command: str) -> str | None:
    """The line to print for `exc`, or None when no extra provides the missing module."""
    root = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return None
    return f"adapter {command}: needs {root}, which this installation lacks: pip install 'energyd[{extra}]'"
