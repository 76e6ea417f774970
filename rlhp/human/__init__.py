"""What a person needs to teach the agent: clips of its behaviour, a durable label store,
the labelling page and its JSON API, and the host-side teacher that connects them to the
trainer between jitted chunks."""
