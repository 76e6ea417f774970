"""The training step's parts as module functions, against numbers worked out by hand."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp import normalize, rewards
from rlhp.agents import Transitions, make_agent
from rlhp.presets import preset
from rlhp.envs import make_env
from rlhp.train import episode_metrics, episode_stats


@pytest.mark.parametrize("jit", [False, True])
def test_scale_by_return_divides_by_the_std_of_discounted_returns(jit):
    reward = jnp.asarray([[1.0, 2.0], [3.0, 0.0], [-1.0, 4.0]])   # [T=3, B=2]
    done = jnp.asarray([[False, False], [True, False], [False, False]])
    scale0 = normalize.return_scale(2).replace(disc_return=jnp.asarray([10.0, 0.0]))
    fn = jax.jit(normalize.scale_by_return) if jit else normalize.scale_by_return
    scale, scaled = fn(scale0, reward, done, 0.5)
    # running discounted returns, by hand: env 0 starts from 10 and restarts after t=1
    g = np.asarray([[6.0, 2.0], [6.0, 1.0], [-1.0, 4.5]])
    np.testing.assert_allclose(scale.disc_return, [-1.0, 4.5])
    # the statistics start from a prior of weight 1e-4: the std is g's, to 1e-4
    np.testing.assert_allclose(scale.stats.var, g.var(), rtol=1e-3)
    np.testing.assert_allclose(scaled, np.asarray(reward) / g.std(), rtol=1e-3)
    # after a long history of unit-std returns, a reward of 100 is clipped to 10
    seasoned = normalize.return_scale(1).replace(
        stats=normalize.RunningStats(jnp.zeros(()), jnp.ones(()), jnp.asarray(1e6)))
    big = normalize.scale_by_return(seasoned, jnp.asarray([[100.0]]), jnp.zeros((1, 1), bool), 0.0)[1]
    assert float(big[0, 0]) == 10.0


def test_episode_statistics_report_only_episodes_that_ended():
    reward = jnp.asarray([[1.0, 1.0], [2.0, 1.0], [0.0, 1.0], [5.0, 1.0]])  # [T=4, B=2]
    valid = jnp.asarray([[True, True], [True, True], [False, True], [True, True]])
    done = jnp.asarray([[False, False], [True, False], [False, False], [False, False]])
    ret, length, fin_ret, fin = episode_stats(reward, valid, done, jnp.asarray([4.0, 0.0]),
                                              jnp.asarray([2, 0], jnp.int32))
    np.testing.assert_allclose(ret, [5.0, 4.0])      # env 0: a new episode from t=2 (invalid)
    np.testing.assert_array_equal(length, [1, 4])
    m = episode_metrics(jnp.int32(6), 8, fin_ret, fin)
    assert int(m["episodes"]) == 1 and float(m["true_return"]) == 7.0  # 4 + 1 + 2
    assert int(m["env_steps"]) == 56
    none = episode_metrics(jnp.int32(0), 8, fin_ret, jnp.zeros_like(fin))
    assert np.isnan(float(none["true_return"]))


class _Learner:
    """relabel: r-hat = first observation coordinate, spread = second."""

    def relabel(self, pref, obs, action, valid, reward_std, update=True):
        return pref, obs[..., 0], obs[..., 1]


def test_learned_reward_adds_the_fading_disagreement_bonus_only_when_asked():
    obs = jnp.asarray([[[1.0, 0.5], [2.0, 0.1]]])    # [T=1, B=2, 2]
    args = (_Learner(), None, obs, None, jnp.ones((1, 2), bool), 1.0)
    _, reward, r_hat, spread = rewards.learned_reward(*args)
    np.testing.assert_array_equal(reward, [[1.0, 2.0]])
    _, reward, _, _ = rewards.learned_reward(*args, bonus=0.5, bonus_left=0.4)
    np.testing.assert_allclose(reward, [[1.0 + 0.2 * 0.5, 2.0 + 0.2 * 0.1]])


def test_exploration_reward_is_the_state_entropy_reward_per_step():
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 2))
    valid = jnp.ones((4, 3), bool).at[1, 2].set(False)
    got = rewards.exploration_reward(obs, valid)
    chex.assert_shape(got, (4, 3))
    want = rewards.state_entropy_reward(obs.reshape(12, 2), valid.reshape(-1))
    np.testing.assert_array_equal(got.reshape(-1), want)
    assert float(got[1, 2]) == 0.0


def test_ppo_agent_protocol_shapes_and_an_update_toward_its_targets():
    cfg = preset("gridworld", num_envs=8, rollout_length=4, num_minibatches=2, update_epochs=4)
    spec = make_env("gridworld", "gridworld", 8).spec
    agent = make_agent(cfg, spec)
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, 8) + spec.obs_shape)
    state = agent.init(jax.random.PRNGKey(1), obs[0])
    action, logp, value = agent.act(state, obs.reshape((-1,) + spec.obs_shape), jax.random.PRNGKey(2))
    chex.assert_shape([action, logp, value], (32,))
    chex.assert_shape(agent.mode(state, obs[0]), (8,))
    batch = Transitions(obs=obs, action=jnp.zeros((4, 8), jnp.int32), log_prob=jnp.full((4, 8), jnp.log(0.2)),
                        value=jnp.zeros((4, 8)), reward=jnp.ones((4, 8)) * jnp.arange(8.0),
                        next_obs=obs, terminated=jnp.ones((4, 8), bool),
                        truncated=jnp.zeros((4, 8), bool), valid=jnp.ones((4, 8), bool))
    new, metrics = agent.update(state, batch, cfg.dynamic(), jax.random.PRNGKey(3))
    assert int(new.updates) == 1 and set(metrics) >= {"policy_loss", "value_loss", "approx_kl"}
    # terminal steps: the value targets are the rewards, and the value head moved toward them
    _, _, v0 = agent.act(state, obs[0], jax.random.PRNGKey(4))
    _, _, v1 = agent.act(new, obs[0], jax.random.PRNGKey(4))
    assert float(jnp.abs(v1 - jnp.arange(8.0)).mean()) < float(jnp.abs(v0 - jnp.arange(8.0)).mean())
