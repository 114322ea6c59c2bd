"""Deploying over SSH: the one module that speaks SSH (``ssh``), the steps carried out
(``deploy``) and the wheelhouse built here and uploaded (``wheelhouse``).

May touch: a remote host over SSH (fabric, only in ``ssh``); local processes (pip) through
``host.procs``; the local wheel cache."""
