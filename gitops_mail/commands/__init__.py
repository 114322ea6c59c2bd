"""One module per command: ``run(args) -> int``, calling the pure core."""
