"""Bridges to neighbouring libraries: TF-Agents experience, saved policies."""
