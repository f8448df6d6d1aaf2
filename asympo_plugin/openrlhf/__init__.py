"""The OpenRLHF adapter (OpenRLHF 0.11.2). Importing this package imports no framework."""
