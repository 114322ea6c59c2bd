"""chasquid's aliases files: the parser (``parse``) and chasquid's resolver with the 1.11
and >= 1.14 rules (``resolution``).

Pure."""
