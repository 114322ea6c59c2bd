"""The pure core: formats, checks, the manifest, state, plan, render, DNS records, reports.

May touch: nothing. Plain data in, plain data out: no git, no processes, no sockets, no writes."""
