"""Readers that turn framework files into rnnfast models without the framework installed."""
