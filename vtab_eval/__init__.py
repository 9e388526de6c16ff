"""Downstream evaluation: expert selection, fine-tuning and VTAB-style reports."""
