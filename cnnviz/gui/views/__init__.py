"""Widgets of the main window; each draws session state and reports what the user did."""
