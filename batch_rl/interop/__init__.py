"""Bridges to neighbouring libraries: TF-Agents experience, exported policies."""
