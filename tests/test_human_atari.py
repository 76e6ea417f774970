"""A person labels Pong: a tiny Pong run with the human teacher poses pairs of stored uint8
frames, the labelling page serves their clips, answers posted through the JSON API reach
the comparison database as uint8 frames, and they export and read back for another run."""
import imageio.v2 as imageio
import httpx
import jax
import numpy as np
import pytest

from rlhp.envs import atari, make_env
from rlhp.human.server import Server, make_app
from rlhp.human.store import Store, read_jsonl
from rlhp.human.teacher import QUEUE, HumanTeacher
from rlhp.presets import preset
from rlhp.train import make_train


@pytest.fixture(scope="module")
def pong_run():
    """A tiny Pong preference run (2 envs, 50-step rollouts, the paper's CNN r-hat) after
    init: two rollouts of segments, no pretraining (nothing is answered yet)."""
    cfg = preset("pong", teacher="human", num_envs=2, rollout_length=50, total_steps=2 * 50 * 4,
                 prefill_iterations=2, labels=40, upfront_fraction=0.5, label_window=30,
                 pretrain_updates=0, reward_batch=4, segment_capacity=16,
                 reward_split_sample=4)
    trainer = make_train(cfg, make_env("pong", "envpool", 2, preference_episodes=True))
    dyn = cfg.dynamic()
    return cfg, trainer, dyn, jax.jit(trainer.init)(jax.random.PRNGKey(0), dyn)


def test_pong_pairs_answered_through_the_api_reach_the_database(pong_run, tmp_path, until):
    cfg, trainer, dyn, state = pong_run
    (_, r1, _, _), = atari.HIDDEN["pong"]
    store = Store(tmp_path / "labels.sqlite")
    teacher = HumanTeacher(trainer, store, tmp_path / "clips")
    server = Server(make_app(store, teacher.clip_dir, lambda: teacher.status,
                             ready=teacher.ready)).start()
    it = cfg.explore_iterations
    try:
        state = teacher.between_chunks(state, it, dyn)
        assert store.counts()["pending"] == QUEUE
        until(lambda: all(teacher.ready(p) for p in store.pending()))  # the worker's clips
        until(lambda: teacher.status["behaviour_version"] == 1)
        assert (tmp_path / "clips" / "behaviour.mp4").stat().st_size > 1000  # the agent now
        answered = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for answer in ("left", "right"):
                q = client.get("/api/query").json()
                left, right = (np.stack(imageio.mimread(client.get(q[side]).content,
                                                        format="mp4"))
                               for side in ("left", "right"))
                assert left.shape == (25, 336, 336, 3)          # one frame per step, x4
                assert left.std() > 20 and left[:, :4 * r1].max() < 10  # real play, score blank
                assert np.abs(left.astype(float) - right).mean() > 0.1
                reply = client.post("/api/labels", json={"pair": q["pair"], "answer": answer})
                assert reply.json()["saved"]
                answered.append(q["pair"])
    finally:
        server.stop()
    state = teacher.between_chunks(state, it + 1, dyn)
    teacher.close()
    db = jax.device_get(state.pref.db)
    assert db.obs.dtype == np.uint8 and db.obs.shape == (30, 2, 25 + 3, 84, 84)
    assert db.filled.sum() == 2 and sorted(db.mu[db.filled].tolist()) == [0.0, 1.0]
    labels = store.labels()
    assert [l.pair for l in labels] == answered
    for lab in labels:
        assert lab.obs.dtype == np.uint8 and lab.obs.shape == (2, 28, 84, 84)
        np.testing.assert_array_equal(db.obs[db.filled & (db.mu == lab.mu)][0], lab.obs)
    assert (db.obs[db.filled][..., :r1, :] == 0).all()         # the score never stored
    # export and read back, as --labels-from reads them for another run
    store.export(tmp_path / "labels.jsonl")
    learner = trainer.learner
    back = read_jsonl(tmp_path / "labels.jsonl", learner.store.stored(learner.segment_length),
                      learner.action_shape, learner.segment_length)
    assert [l.answer for l in back] == ["left", "right"]
    for got, saved in zip(back, labels):
        assert got.obs.dtype == np.uint8
        np.testing.assert_array_equal(got.obs, saved.obs)
        np.testing.assert_array_equal(got.action, saved.action)


@pytest.mark.slow  # 5-7 min here: three CLI runs, XLA compiling the CNNs' gradients
def test_pong_human_run_resume_export_and_labels_from(tmp_path):
    """``python -m rlhp.run --env=pong --teacher=human``, tiny: answers through the API
    reach the run's database; killed and resumed it loses none and inserts none twice;
    exported, they enter another run's database through ``--labels-from``."""
    import subprocess
    import sys
    import time

    from human_runs import answer, comparisons, start, wait_for

    tiny = ["--env=pong", "--teacher=human", "--num-envs", "2", "--labels", "40",
            "--steps", "1000000", "--no-video", "--wandb", "disabled",
            "--checkpoint-every", "0"] + [
        a for kv in ("rollout_length=50", "iterations_per_chunk=1", "prefill_iterations=2",
                     "upfront_fraction=0.5", "label_window=30", "pretrain_updates=0",
                     "reward_batch=4", "segment_capacity=16", "reward_split_sample=4")
        for a in ("--set", kv)]
    run_dir = tmp_path / "run"
    proc, url = start([*tiny, "--run-dir", str(run_dir)], tmp_path)
    try:
        first = answer(url, 2)
        wait_for(run_dir, 2)
    finally:
        proc.kill()
        proc.wait()
    proc, url = start(["--run-dir", str(run_dir), "--resume"], tmp_path)
    try:
        second = answer(url, 1)
        wait_for(run_dir, 3)
        time.sleep(3)
        assert max(c for c in comparisons(run_dir) if c is not None) == 3  # none twice
    finally:
        proc.kill()
        proc.wait()
    labels = Store(run_dir / "labels.sqlite").labels()
    assert [(l.pair, l.answer) for l in labels] == first + second
    assert all(l.obs.dtype == np.uint8 and l.obs.shape == (2, 28, 84, 84) for l in labels)
    out = tmp_path / "labels.jsonl"
    subprocess.run([sys.executable, "-m", "rlhp.labels", "export", str(run_dir), str(out)],
                   check=True)
    other = tmp_path / "other"
    proc, _ = start([*tiny, "--labels-from", str(out), "--run-dir", str(other)], tmp_path)
    try:
        wait_for(other, 3)  # the three answers, before any asked of this run
    finally:
        proc.kill()
        proc.wait()
