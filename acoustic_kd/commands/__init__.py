"""CLI subcommands (thin wrappers; see acoustic_kd/cli.py for the module protocol)."""
