"""a3d_cli.mesh."""
