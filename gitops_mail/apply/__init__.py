"""The apply transaction shared by the CLI and the daemon: read, validate, plan, stage,
swap, prove, restore; the record of attempts (``store``).

May touch: the host and git through their layers; ``state_dir`` through ``store``."""
