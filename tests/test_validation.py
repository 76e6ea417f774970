"""Bad input: exit status 2, one line on stderr naming the field, nothing created. And the
config's metadata: every field listed, the dynamic ones exactly, round trips."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from rlhp import run
from rlhp.config import DYNAMIC_FIELDS, FIELDS, SECTION_OF, Config, ConfigError
from rlhp.presets import preset

G = "--env=gridworld"
BAD = [  # (arguments, what the one line must contain)
    # the task and backend
    (["--env=nope"], "env='nope': expected one of: ant,"),
    (["--env=hopper", "--backend=nope"], "backend='nope'"),
    (["--env=swimmer", "--backend=brax"], "not available on backend"),
    ([G, "--set", "env=1"], "env=1"),
    # counts: ints, in range
    ([G, "--steps=0"], "total_steps=0"),
    ([G, "--steps=-5"], "total_steps=-5"),
    ([G, "--steps", "10000000000000"], "total_steps=10000000000000"),
    ([G, "--steps=10"], "total_steps=10 is less than one iteration"),
    ([G, "--set", "total_steps=1e5"], "total_steps=100000.0"),
    ([G, "--num-envs=0"], "num_envs=0"),
    ([G, "--num-envs=1e3"], "num_envs='1e3'"),
    ([G, "--set", "num_envs=100000"], "num_envs=100000"),
    ([G, "--set", "rollout_length=0"], "rollout_length=0"),
    ([G, "--set", "eval_episodes=0"], "eval_episodes=0"),
    ([G, "--set", "iterations_per_chunk=0"], "iterations_per_chunk=0"),
    ([G, "--set", "update_epochs=0"], "update_epochs=0"),
    ([G, "--set", "num_minibatches=3"], "num_minibatches=3"),
    ([G, "--set", "down_steps=-1"], "down_steps=-1"),
    ([G, "--set", "explore_steps=-1"], "explore_steps=-1"),
    ([G, "--steps=10240", "--set", "explore_steps=10240"], "explore_steps=10240"),
    ([G, "--set", "prefill_iterations=-1"], "prefill_iterations=-1"),
    ([G, "--set", "pretrain_rounds=0"], "pretrain_rounds=0"),
    ([G, "--set", "reward_updates=-1"], "reward_updates=-1"),
    ([G, "--set", "upfront_segment_length=5"], "upfront_segment_length=5: must lie in [0, L=4]"),
    ([G, "--teacher=human", "--set", "upfront_segment_length=2"],
     "upfront_segment_length needs a synthetic teacher"),
    # seeds: ints that envpool (int32, plus the evaluation pool's offset) and the PRNG take
    ([G, "--seed", "2**70"], "seed='2**70'"),
    ([G, "--seed=-1"], "seed=-1"),
    (["--env=hopper", "--seed", "4294967296"], "seed=4294967296"),
    ([G, "--seed", "2147483648"], "seed=2147483648"),
    # label budget and buffers
    ([G, "--labels=0"], "labels=0"),
    ([G, "--set", "labels=1.5"], "labels=1.5"),
    ([G, "--set", "labels=100000000"], "labels=100000000"),
    ([G, "--labels=50", "--set", "max_labels=10"], "labels=50 exceeds the database capacity"),
    ([G, "--set", "max_labels=-1"], "max_labels=-1"),
    ([G, "--set", "candidate_factor=0"], "candidate_factor=0"),
    ([G, "--set", "segment_capacity=0"], "segment_capacity=0"),
    ([G, "--set", "ensemble_size=0"], "ensemble_size=0"),
    ([G, "--set", "reward_batch=0"], "reward_batch=0"),
    ([G, "--set", "queries_per_iteration=-1"], "queries_per_iteration=-1"),
    ([G, "--set", "segment_length=200"], "segment_length=200"),
    ([G, "--set", "segment_length=-1"], "segment_length=-1"),
    (["--env=hopper", "--set", "segment_length=0", "--set", "rollout_length=8"],
     "segment_length=0 (L=60 steps): must be at most rollout_length=8"),  # found with the env
    (["--env=hopper", "--labels", "16000000"], "labels=16000000"),  # memory
    (["--env=hopper", "--set", "segment_capacity=16000000"], "segment_capacity=16000000"),
    (["--env=hopper", "--labels", "16000000", "--set", "max_labels=16000000"],
     "max_labels=16000000"),
    (["--env=hopper", "--labels", "1000000", "--set", "candidate_factor=65536"],
     "candidate_factor=65536"),
    # the Atari settings (rlhp.envs.atari, rlhp.agents.a2c, the reward CNN)
    ([G, "--set", "agent=dqn"], "agent='dqn'"),
    ([G, "--set", "a2c_steps=0"], "a2c_steps=0"),
    ([G, "--set", "end_penalty=-1"], "end_penalty=-1"),
    ([G, "--set", "reward_net=rnn"], "reward_net='rnn'"),
    ([G, "--set", "reward_split_sample=0"], "reward_split_sample=0"),
    ([G, "--set", "label_window=-3"], "label_window=-3"),
    # network sizes: tuples of positive ints
    ([G, "--set", "hidden=(0,)"], "hidden=(0,)"),
    ([G, "--set", "hidden=64"], "hidden=64"),
    ([G, "--set", "hidden=[64, 'a']"], "hidden=(64, 'a')"),
    ([G, "--set", "reward_hidden=(64, -1)"], "reward_hidden=(64, -1)"),
    # bools are bools
    ([G, "--set", "normalize_obs=1"], "normalize_obs=1"),
    ([G, "--set", "offline=yes"], "offline='yes'"),
    # floats: finite, in range; probabilities in [0, 1]; rates and clips positive
    ([G, "--set", "gamma=high"], "gamma='high'"),
    ([G, "--set", "gamma=1.5"], "gamma=1.5"),
    ([G, "--set", "gamma=True"], "gamma=True"),
    ([G, "--set", "gae_lambda=-0.1"], "gae_lambda=-0.1"),
    ([G, "--set", "learning_rate=0"], "learning_rate=0"),
    ([G, "--set", "learning_rate=nan"], "learning_rate='nan'"),
    ([G, "--set", "clip_eps=0"], "clip_eps=0"),
    ([G, "--set", "ent_coef=-1"], "ent_coef=-1"),
    ([G, "--set", "vf_coef=-1"], "vf_coef=-1"),
    ([G, "--set", "max_grad_norm=-1"], "max_grad_norm=-1"),
    ([G, "--set", "max_grad_norm=0"], "max_grad_norm=0"),
    ([G, "--set", "uncertainty_bonus=-0.5"], "uncertainty_bonus=-0.5"),
    ([G, "--set", "fall_penalty=-1"], "fall_penalty=-1"),
    ([G, "--set", "fall_penalty=1e39"], "fall_penalty=1e+39"),
    ([G, "--set", "reward_lr=0"], "reward_lr=0"),
    ([G, "--set", "reward_std=-1"], "reward_std=-1"),
    ([G, "--set", "reward_l2_max=0"], "reward_l2_max=0"),
    ([G, "--set", "reward_l2_init=-1"], "reward_l2_init=-1"),
    ([G, "--set", "upfront_fraction=-1"], "upfront_fraction=-1"),
    ([G, "--set", "upfront_fraction=1.5"], "upfront_fraction=1.5"),
    ([G, "--set", "label_horizon=0.0"], "label_horizon=0.0"),
    ([G, "--set", "label_horizon=1e999"], "label_horizon=inf"),
    ([G, "--set", "teacher_mistake=2"], "teacher_mistake=2"),
    ([G, "--set", "teacher_myopia=-0.5"], "teacher_myopia=-0.5"),
    ([G, "--set", "teacher_beta=-1"], "teacher_beta=-1"),
    ([G, "--set", "teacher_skip=-1"], "teacher_skip=-1"),
    ([G, "--set", "teacher_equal=-1"], "teacher_equal=-1"),
    # choices
    ([G, "--reward=bogus"], "reward='bogus'"),
    ([G, "--teacher=bogus"], "teacher='bogus'"),
    ([G, "--query=bogus"], "query='bogus'"),
    ([G, "--audit-labels=-1"], "audit_labels=-1"),
    ([G, "--set", "fresh_window=0"], "fresh_window=0"),
    ([G, "--set", "fresh_alarm=1.5"], "fresh_alarm=1.5"),
    # settings only a learned reward reads, however the reward was chosen
    ([G, "--offline", "--reward=true"], "offline=True needs reward='learned'"),
    (["--env=hopper", "--reward=teacher", "--offline"], "offline=True needs reward='learned'"),
    ([G, "--reward=true", "--labels=50"], "--labels 50: only a learned reward uses it"),
    ([G, "--set", "reward=true", "--labels", "50"], "--labels 50: only a learned reward"),
    ([G, "--set", "reward=true", "--set", "teacher=noisy"], "teacher='noisy': only a learned"),
    (["--env=hopper", "--reward=teacher", "--query=random"], "--query random: only a learned"),
    # the command line itself
    ([G, "--set", "nope=1"], "expected FIELD=VALUE"),
    ([G, "--set", "gamma"], "expected FIELD=VALUE"),
    ([G, "--bogus"], "unrecognized arguments: --bogus"),
    ([G, "--wandb=bogus"], "unknown --wandb"),
    ([G, "--checkpoint-every=-1"], "--checkpoint-every=-1.0"),
    ([G, "--checkpoint-every=nan"], "--checkpoint-every=nan"),
    # the labelling page's flags
    ([G, "--teacher=human", "--host", "0.0.0.0"], "--host 0.0.0.0: serving beyond 127.0.0.1 "
                                                  "needs --token"),
    ([G, "--teacher=human", "--port", "70000"], "--port 70000: must lie in [0, 65535]"),
    ([G, "--teacher=human", "--port", "-1"], "--port -1: must lie in [0, 65535]"),
    ([G, "--port", "8000"], "--port, --host and --token serve the labelling page: they need "
                            "--teacher human"),
    ([G, "--port", "0"], "they need --teacher human"),
    ([G, "--host", "127.0.0.1"], "they need --teacher human"),
    ([G, "--host", "0.0.0.0", "--token", "s3cret"], "they need --teacher human"),
    ([G, "--teacher=human", "--reward=true", "--port", "8000"], "--teacher human: only a "
                                                                "learned reward uses it"),
]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a[1:]) or a[0] for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_creates_nothing(argv, message, capsys, tmp_path):
    assert run.main(argv + [f"--run-dir={tmp_path / 'r'}"]) == 2
    line = one_line(capsys)
    assert line.startswith("error: ") and message in line, line
    assert not list(tmp_path.iterdir())


def test_every_field_is_checked_by_the_table():
    """Each field either has a bad-input case above or takes any value of its type."""
    named = {m.split("=")[0].split()[-1].lstrip("-") for _, m in BAD if "=" in m}
    untested = set(FIELDS) - named - {"anneal_lr", "scale_reward", "reward_uses_action",
                                      "reward_linear", "pretrain_updates",
                                      "reward_stats_window"}
    assert not untested, untested


@pytest.mark.parametrize("setup,resume,message", [
    (lambda d: d.write_text("x"), False, "is not a directory"),
    (lambda d: d.parent.joinpath("f").write_text("x"), False, "is not a directory"),
    (lambda d: (d.mkdir(), (d / "config.json").mkdir()), True, "config.json is not a file"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text(json.dumps(preset("gridworld").to_dict())),
                (d / "checkpoints").write_text("x")), True, "checkpoints is not a directory"),
])
def test_bad_run_directory(setup, resume, message, capsys, tmp_path):
    run_dir = tmp_path / "r"
    setup(run_dir)
    target = tmp_path / "f" / "r" if not run_dir.exists() else run_dir
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [G, f"--run-dir={target}"] + (["--resume"] if resume else [])
    assert run.main(argv) == 2
    assert message in one_line(capsys)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_unwritable_run_directory(capsys):
    assert run.main([G, "--run-dir=/proc/rlhp-test/run"]) == 2
    assert "--run-dir /proc/rlhp-test/run is not writable" in one_line(capsys)


def test_seeds_of_envpool_pools_stay_int32():
    assert run.env_seed(5, run.EVAL_SEED_OFFSET) == 10_005
    assert 0 <= run.env_seed(2**31 - 1, run.EVAL_SEED_OFFSET) < 2**31
    assert 0 <= run.env_seed(2**31 - 1, 10**6) < 2**31


def test_memory_check_names_the_largest_buffer():
    spec = SimpleNamespace(dt=0.008, max_episode_steps=1000, obs_shape=(11,), action_shape=(3,),
                           frame_stack=0)
    cfg = preset("hopper")
    run.check_memory(cfg, spec, available=2**30)
    with pytest.raises(ConfigError, match=r"labels=100000: .* labels can be at most [\d,]+$") as e:
        run.check_memory(cfg.replace(labels=100_000), spec, available=2**30)
    assert e.value.field == "labels"


def test_list_settings_shows_every_field(capsys):
    assert run.main(["--list-settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(FIELDS) and len(lines) == len(FIELDS) + 1
    for name, f in FIELDS.items():
        assert rows[name].split()[1] == SECTION_OF[name]
        assert f.metadata["meaning"] in rows[name]
        assert ("(dynamic)" in rows[name]) == f.metadata["dynamic"]
    assert "in [0, 1]" in rows["gamma"] and "disagreement" in rows["query"]


def test_help_of_set_mentions_list_settings(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--help"])
    assert "--list-settings shows every field" in " ".join(capsys.readouterr().out.split())


def test_dynamic_has_exactly_the_dynamic_fields():
    dynamic = {n for n, f in FIELDS.items() if f.metadata["dynamic"]}
    assert set(DYNAMIC_FIELDS) == dynamic == {
        "learning_rate", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef",
        "max_grad_norm", "labels", "upfront_fraction", "reward_lr", "reward_std", "query",
        "teacher", "teacher_beta", "teacher_mistake", "teacher_skip", "teacher_equal",
        "teacher_myopia"}
    cfg = preset("gridworld", query="entropy", teacher="myopic", labels=40)
    dyn = cfg.dynamic()
    assert {f.name for f in dataclasses.fields(dyn)} == dynamic
    for name in dynamic:
        leaf = getattr(dyn, name)
        assert leaf.shape == () and leaf.dtype == np.float32, name
    assert dyn.query == 2 and dyn.teacher == 5 and dyn.labels == 40
    assert dyn.upfront_fraction == np.float32(0.25)
    assert cfg.replace(offline=True).dynamic().upfront_fraction == 1.0
    assert cfg.dynamic().teacher_params().myopia == np.float32(0.9)


@pytest.mark.parametrize("env,reward", [("gridworld", "learned"), ("hopper", "learned"),
                                        ("hopper", "true")])
def test_config_round_trips_and_keeps_its_sizes(env, reward):
    cfg = preset(env, reward=reward, seed=7)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = cfg.to_dict()
    del old["reward_linear"]  # a run directory from before a field existed still loads
    assert Config.from_dict(old).reward_linear is False
    with pytest.raises(ConfigError, match="unknown config field"):
        Config.from_dict({**cfg.to_dict(), "bogus": 1})
    sizes = {"gridworld": [1024, 256, 160, 163840, 10, 163840, 200, 50, 4],
             "hopper": [2048, 64, 976, 1998848, 1, 1998848, 700, 175,
                        8 if reward == "learned" else 3]}[env]
    names = ["batch_size", "minibatch_size", "num_iterations", "rl_steps", "chunk_iterations",
             "steps", "label_capacity", "upfront_labels", "labels_per_iteration"]
    assert [getattr(cfg, n) for n in names] == sizes


def test_override_parses_literals_and_keeps_strings():
    cfg = preset("gridworld").override(["hidden=[32, 32]", "query=random", "gamma=1",
                                        "offline=True"])
    assert cfg.hidden == (32, 32) and cfg.query == "random" and cfg.gamma == 1
    assert cfg.offline and cfg.upfront_labels == cfg.labels
