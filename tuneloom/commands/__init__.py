"""One module per ``tuneloom`` subcommand, each with ``add_parser(subparsers)``."""
