"""a3d_cli.stages."""
