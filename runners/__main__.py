"""``python -m runners`` is the same as the ``runner`` command."""

from runners.cli import main

if __name__ == "__main__":  # pragma: no cover - thin entry point
    main()
