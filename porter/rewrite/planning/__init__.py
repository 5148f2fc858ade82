"""Planning: every cross-step decision of a port, made once from the facts."""
