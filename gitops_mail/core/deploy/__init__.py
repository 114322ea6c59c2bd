"""A deploy as data: which host, where things go on it, the steps that make it so.

May touch: nothing. ``host/remote/`` carries the steps out over SSH and reports."""
