"""Reporting: reads run folders (never live models) -> tables, claims, figures, report."""
