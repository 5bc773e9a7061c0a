"""Serverless Label Studio ML backend for text classification (see README.md)."""
