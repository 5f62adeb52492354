"""services/hedger: hedges the maker's inventory (engine, config, runner)."""
