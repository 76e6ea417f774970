"""The human teacher on the select / answer / insert seam, on a tiny gridworld run: the
pairs the schedule makes due are posed, and ready once the clip worker has written their
clips; saved answers reach the comparison database between chunks; a resumed teacher
inserts exactly the answers its checkpoint had not seen and renders the pairs left
unrendered; an error in rendering stops the run; the step itself asks nothing."""
import imageio.v2 as imageio
import jax
import numpy as np
import pytest

from rlhp.envs import make_env
from rlhp.human import clips
from rlhp.human.clip_worker import ClipError
from rlhp.human.store import Store
from rlhp.human.teacher import QUEUE, HumanTeacher
from rlhp.presets import preset
from rlhp.train import make_train


@pytest.fixture(scope="module")
def human_run():
    cfg = preset("gridworld", teacher="human", labels=20, total_steps=8 * 1024,
                 iterations_per_chunk=1, pretrain_updates=4, reward_updates=2)
    trainer = make_train(cfg, make_env("gridworld", "auto", cfg.num_envs))
    dyn = cfg.dynamic()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), dyn)
    return cfg, trainer, dyn, state


def test_answers_reach_the_database_and_survive_a_resume(human_run, tmp_path, until):
    cfg, trainer, dyn, state = human_run
    assert int(state.pref.asked) == 0 and int(state.pref.db.filled.sum()) == 0  # nothing asked on device
    store = Store(tmp_path / "labels.sqlite")
    teacher = HumanTeacher(trainer, store, tmp_path / "clips")
    it = cfg.explore_iterations
    state = teacher.between_chunks(state, it, dyn)
    posed = store.pending()
    assert len(posed) == min(QUEUE, round(cfg.upfront_fraction * cfg.labels)) == 5
    until(lambda: all(teacher.ready(pair) for pair in posed))  # rendered by the worker
    for pair in posed:
        frames = np.stack(imageio.mimread(tmp_path / "clips" / f"{pair}-left.mp4"))
        assert frames.shape[0] == trainer.learner.segment_length and frames.std() > 5
    assert store.labels() == []
    answers = ["left", "right", "equal", "cant_tell"]
    for pair, answer in zip(posed, answers):
        store.answer(pair, answer)
    state = teacher.between_chunks(state, it + 1, dyn)
    assert int(state.pref.asked) == 4                 # "can't tell" counts against the budget
    assert int(state.pref.db.filled.sum()) == 3       # but enters no database
    db_mu = sorted(np.asarray(state.pref.db.mu)[np.asarray(state.pref.db.filled)].tolist())
    assert db_mu == [0.0, 0.5, 1.0]
    saved = {l.pair: l for l in store.labels()}
    first = saved[posed[0]]
    assert not np.array_equal(first.obs[0], first.obs[1])  # two different segments
    np.testing.assert_array_equal(np.asarray(state.pref.db.obs)[np.asarray(state.pref.db.mu) == 1.0][0],
                                  first.obs)
    # a queue topped up again: the one left waiting plus the newly due
    assert len(store.pending()) >= 1
    # the trainer "crashes" after inserting two answers into its checkpoint: a resumed
    # teacher inserts the rest, once
    store.answer(store.pending()[0], "left")
    teacher.close()  # and the pairs' clips lost, as if it died before the worker drew them
    for pair in store.pending():
        (tmp_path / "clips" / f"{pair}-right.mp4").unlink(missing_ok=True)
    resumed = HumanTeacher(trainer, Store(tmp_path / "labels.sqlite"), tmp_path / "clips",
                           inserted=teacher.inserted)
    until(lambda: all(resumed.ready(pair) for pair in store.pending()))
    resumed.close()
    state2 = resumed.take_answers(state, it + 2)
    assert int(state2.pref.asked) == 5 and int(state2.pref.db.filled.sum()) == 4
    assert resumed.take_answers(state2, it + 3).pref.db.filled.sum() == 4  # nothing twice


def test_an_error_in_rendering_stops_the_run(human_run, tmp_path, monkeypatch, until):
    cfg, trainer, dyn, state = human_run

    def broken(spec):
        def frames(segment):
            raise OSError("disk full")
        return frames, 4
    monkeypatch.setattr(clips, "clip_maker", broken)
    teacher = HumanTeacher(trainer, Store(tmp_path / "labels.sqlite"), tmp_path / "clips")
    with pytest.raises(ClipError, match="OSError: disk full"):  # at the latest a chunk later
        state = teacher.between_chunks(state, cfg.explore_iterations, dyn)
        until(lambda: not teacher.worker.running)
        teacher.between_chunks(state, cfg.explore_iterations + 1, dyn)
    assert teacher.store.pending()  # the pairs posed are kept
    with pytest.raises(ClipError):
        teacher.close()
    assert not any(teacher.ready(p) for p in teacher.store.pending())
