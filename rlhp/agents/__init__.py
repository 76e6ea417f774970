"""Policy learners behind one protocol (``rlhp.agents.base.Agent``); PPO today."""
from rlhp.agents.base import Agent, Transitions


def make_agent(cfg, spec) -> Agent:
    """The policy learner for ``cfg`` on an env with ``spec``."""
    from rlhp.agents import ppo
    return ppo.make(cfg, spec)


__all__ = ["Agent", "Transitions", "make_agent"]
