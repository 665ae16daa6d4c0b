"""The ``ppmodels`` command line (installed as the package ``ppmodels_cli``). Each command file is thin."""
