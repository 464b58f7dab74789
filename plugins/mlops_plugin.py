"""Thin re-export for deployments that mount plugins/ (the entry point registers it when installed)."""

from mlops_provider.plugins.mlops import MLOpsPlugin

__all__ = ["MLOpsPlugin"]
