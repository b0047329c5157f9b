"""One module per area; `definitions.py` loads them all (`dg.load_from_defs_folder`)."""
