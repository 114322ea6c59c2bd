"""Git: read any revision through plumbing, write commits and push without ever forcing.

May touch: git repositories, through ``host.procs``; only ``write`` imports GitPython."""
