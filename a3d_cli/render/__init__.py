"""a3d_cli.render."""
