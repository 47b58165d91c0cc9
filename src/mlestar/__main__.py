"""``python -m mlestar`` is the ``mlestar`` command."""

from mlestar.cli.app import main

if __name__ == "__main__":
    main()
