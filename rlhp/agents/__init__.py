"""Policy learners behind one protocol (``rlhp.agents.base.Agent``): PPO (MuJoCo-style
tasks, the gridworld) and A2C (Atari), chosen by ``Config.agent``."""
from rlhp.agents.base import Agent, Transitions


def make_agent(cfg, spec) -> Agent:
    """The policy learner for ``cfg`` on an env with ``spec``."""
    from rlhp.agents import a2c, ppo
    return (a2c if cfg.agent == "a2c" else ppo).make(cfg, spec)


__all__ = ["Agent", "Transitions", "make_agent"]
