"""Utilities: devices, plotting and videos."""
