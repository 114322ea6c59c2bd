"""Effects on this host: the live config dir, processes, chasquid's service, probes,
certificates, host settings, the state lock.

May touch: the filesystem, processes and signals, the server's own SMTP ports; each through
its one module."""
