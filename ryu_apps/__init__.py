"""ryu_apps package."""
