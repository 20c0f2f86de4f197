"""Dialogs: first run, session, settings, export, correction, guidelines, continuation, help."""
