"""Deep reinforcement learning from human preferences in one jitted JAX training step."""
