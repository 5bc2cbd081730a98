"""Task kinds, one folder each, registered in `registry.TASKS` (see CONTRIBUTING.md)."""
