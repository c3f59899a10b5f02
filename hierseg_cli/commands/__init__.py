"""One module per `hierseg` subcommand (see hierseg_cli.main.COMMANDS)."""
