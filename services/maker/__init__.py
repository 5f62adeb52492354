"""services/maker: the Avellaneda-Stoikov market maker (engine, config, runner)."""
