"""Jinja templates of the model cards hf_simo writes (single-task, merged, re-aligned)."""
