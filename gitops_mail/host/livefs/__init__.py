"""chasquid's live config dir: scan it, stage a tree in it, swap file by file under a journal.

May touch: the config dir and its work dir inside it; nothing else writes there."""
