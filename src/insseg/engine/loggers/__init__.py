"""Where training reports go: the interface, its backends and the factory that picks one."""
