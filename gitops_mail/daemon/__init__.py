"""The daemon: triggers, one worker around ``reconcile``, tips, status, commit-back, push
hooks, metrics.

May touch: through apply, git and host; its status file; an HTTP port for metrics."""
