"""DKIM keys on this host: made, kept under ``state_dir`` (0600, root), moved between hosts.
The only place that holds private DKIM keys outside chasquid's config dir."""
