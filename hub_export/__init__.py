"""Exports training checkpoints as TF-Hub modules (see DESIGN.md, "Hub module")."""
