"""The model, with no I/O: pipelines (scikit-learn, train side), the numpy-only compact scorer
(api side), decisions from probabilities, and quality measures."""
