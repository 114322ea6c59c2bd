"""The command line: ``main`` parses argv and maps errors to exit codes; one module per command.

May touch: stdout and stderr; everything else through the daemon, apply, git and host layers."""
