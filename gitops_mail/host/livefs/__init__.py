"""chasquid's live config dir: scan it, stage a tree beside it, swap file by file under a journal.

May touch: the config dir and its work dir; nothing else writes there."""
