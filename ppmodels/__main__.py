"""``python -m ppmodels ...``: the CLI, as torchrun starts it (``torchrun --nproc-per-node N -m ppmodels train ...``)."""

from ppmodels_cli.main import main

if __name__ == "__main__":
    main()
