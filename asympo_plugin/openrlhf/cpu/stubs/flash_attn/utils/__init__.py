"""CPU stub (see the package docstring)."""
