"""The `egw` command line: one thin subcommand per library function."""
