"""Presentation: diagnostics, graphs and plans as text, JSON or Markdown; no logic lives here."""
