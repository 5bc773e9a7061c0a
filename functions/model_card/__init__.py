"""A model card per published version: SVG charts rendered at training time (`charts`) and the
HTML page the API serves at ``GET /projects/{id}/versions/{version}`` (`page`).

Pure Python (no matplotlib, no NumPy), no I/O: the train function renders the charts inside its
size-limited zip, and the API renders the page without importing anything heavy.
"""
