"""The ``kep`` command line: one thin entry point, one module per subcommand group."""
