"""a3d_cli.commands."""
