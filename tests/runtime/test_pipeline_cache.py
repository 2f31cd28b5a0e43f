"""A pipeline's step cache and compute slots: output digests follow content only, a step's run hash follows what it
reads, a record counts only once written whole with its outputs there, and slots are taken all at once or not at all."""

from __future__ import annotations

from pathlib import Path

from mlspec.runtime.pipeline import cache
from mlspec.runtime.pipeline.slots import CountedSlots


def test_an_output_digest_follows_its_content_not_its_place(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "train.csv").write_text("x,y\n1,0\n")
        (tmp_path / name / "sub" / "test.csv").write_text("x,y\n2,1\n")
    assert cache.output_digest(tmp_path / "a") == cache.output_digest(tmp_path / "b")
    (tmp_path / "b" / "sub" / "test.csv").write_text("x,y\n2,0\n")
    assert cache.output_digest(tmp_path / "a") != cache.output_digest(tmp_path / "b")
    (tmp_path / "b" / "sub" / "test.csv").rename(tmp_path / "b" / "sub" / "other.csv")  # a name is content too
    (tmp_path / "b" / "sub" / "other.csv").write_text("x,y\n2,1\n")
    assert cache.output_digest(tmp_path / "a") != cache.output_digest(tmp_path / "b")
    assert cache.output_digest(tmp_path / "a" / "train.csv") != cache.output_digest(tmp_path / "a")


def test_a_steps_run_hash_follows_the_outputs_it_reads() -> None:
    same = cache.run_hash("static", {"data": "d1", "model": "m1"})
    assert same == cache.run_hash("static", {"model": "m1", "data": "d1"})  # order never matters
    assert same != cache.run_hash("static", {"data": "d1", "model": "m2"})
    assert same != cache.run_hash("other", {"data": "d1", "model": "m1"})


def test_a_record_counts_only_whole_and_with_its_outputs_there(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "data"
    out.mkdir(parents=True)
    assert cache.cached(tmp_path) is None
    (tmp_path / f"{cache.RECORD}.partial").write_text("{")  # an interrupted write is never read
    assert cache.cached(tmp_path) is None
    cache.save(tmp_path, {"status": "succeeded", "run_id": "r", "paths": {"data": str(out)}, "digests": {}})
    assert cache.cached(tmp_path) == {"status": "succeeded", "run_id": "r", "paths": {"data": str(out)},
                                      "digests": {}}
    out.rmdir()  # its output is gone: it must run again
    assert cache.cached(tmp_path) is None


def test_slots_are_taken_all_at_once_or_not_at_all() -> None:
    slots = CountedSlots({"compute/cpu": 2})
    assert slots.take("compute/cpu", 1)
    assert not slots.take("compute/cpu", 2)  # one node left: a two-node step waits, taking none
    assert slots.take("compute/cpu", 1) and not slots.take("compute/cpu", 1)
    slots.give("compute/cpu", 2)
    assert slots.take("compute/cpu", 2)
    slots.give("compute/cpu", 2)
    assert slots.take("compute/local", 1) and not slots.take("compute/local", 1)  # unknown: one at a time
