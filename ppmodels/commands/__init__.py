"""The functions behind the CLI commands, one module each: train, encode, sample, evaluate, score, diagnose.

The CLI (``ppmodels_cli``) only parses options and calls these; Python users call them through :mod:`ppmodels`.
"""
