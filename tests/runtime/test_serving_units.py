"""In-process checks of the serving pieces that need no server: the digest's definition, stacking, input schemas."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlspec.runtime.serving.integrity import IntegrityError, model_digest, verify
from mlspec.runtime.serving.protocols import InputError, Table, parse_invocations, parse_v2
from mlspec.runtime.serving.schema import InputSchema
from mlspec.runtime.serving.scorer import Scorer


def test_model_digest_is_the_documented_formula(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    files = {"MLmodel": b"flavors: {}\n", "data/model.pth": bytes(range(256)), ".hidden": b"counted too"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    expected = hashlib.sha256()
    for name in sorted(files):
        expected.update(name.encode() + b"\0" + hashlib.sha256(files[name]).hexdigest().encode() + b"\n")
    assert model_digest(tmp_path) == expected.hexdigest()
    (tmp_path / "data" / "model.pth").rename(tmp_path / "data" / "model2.pth")  # a rename changes it
    assert model_digest(tmp_path) != expected.hexdigest()


def test_verify_refuses_mismatch_and_missing_digest(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("x")
    with pytest.raises(IntegrityError, match="does not match"):
        verify(tmp_path, "0" * 64, "model m version 1")
    with pytest.raises(IntegrityError, match=r"no mlspec\.sha256 tag"):
        verify(tmp_path, None, "model m version 1")
    assert verify(tmp_path, None, "m", allow_unverified=True) == model_digest(tmp_path)
    assert verify(tmp_path, model_digest(tmp_path).upper(), "m") == model_digest(tmp_path)


def _score_all(scorer: Scorer, inputs: list[np.ndarray], timeout: float = 5.0) -> list[Any]:
    async def main() -> list[Any]:
        scorer.start(asyncio.get_running_loop())
        try:
            return await asyncio.gather(*(scorer.score(x, len(x), timeout) for x in inputs), return_exceptions=True)
        finally:
            scorer.close()

    return asyncio.run(main())


@pytest.mark.parametrize("estimate", [None, 0.0001])  # on the thread, then inline on the loop
def test_concurrent_requests_are_stacked_into_one_call_and_split_back(estimate: float | None) -> None:
    calls: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if np.isnan(x).any():
            raise ValueError("Input X contains NaN")
        return x.sum(axis=1)

    inputs = [np.full((n, 2), float(n)) for n in (1, 2, 3)] + [np.array([[np.nan, 1.0]])]
    results = _score_all(Scorer(predict, batchable=True, estimate=estimate), inputs)
    assert [r.tolist() for r in results[:3]] == [[2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
    assert isinstance(results[3], ValueError)  # the bad request fails alone
    # Stacked (on the thread, the first request is already running when the others arrive), and after the NaN
    # failed the stack, each request of it scored alone.
    assert max(calls) >= 6 and calls[-3:] == [2, 3, 1]


def test_an_inline_call_waits_one_loop_turn_for_requests_that_come_with_it() -> None:
    calls: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x.sum(axis=1)

    scorer = Scorer(predict, batchable=True, estimate=0.0001)  # cheap: scored inline on the loop

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        scorer.start(loop)
        try:
            first = loop.create_task(scorer.score(np.ones((1, 2)), 1, 5.0))
            await asyncio.sleep(0)  # the first request is queued; the second comes in the next loop turn
            second = loop.create_task(scorer.score(np.ones((2, 2)), 2, 5.0))
            return list(await asyncio.gather(first, second))
        finally:
            scorer.close()

    results = asyncio.run(main())
    assert [r.tolist() for r in results] == [[2.0], [2.0, 2.0]]
    assert calls == [3]  # one call for both


def test_a_predict_slower_than_the_timeout_is_a_timeout_error() -> None:
    release = threading.Event()

    def predict(x: np.ndarray) -> np.ndarray:
        release.wait(2)
        return x

    started = time.monotonic()
    (result,) = _score_all(Scorer(predict, batchable=True), [np.zeros((1, 1))], timeout=0.2)
    release.set()
    assert isinstance(result, TimeoutError) and time.monotonic() - started < 1.5


NAMES = ["a", "b", "c"]
SIGNATURE = json.dumps([{"type": "double", "name": n} for n in NAMES])


def test_schema_orders_columns_and_names_bad_cells() -> None:
    schema = InputSchema.build(SIGNATURE)
    table, _ = parse_invocations(b'{"dataframe_records": [{"c": 3, "a": 1, "b": 2, "extra": "x"}]}', "")
    assert schema.to_array(table).tolist() == [[1.0, 2.0, 3.0]]  # reordered; unknown columns ignored, as MLflow
    with pytest.raises(InputError, match="row 1, column 'b': 'x' is not a number"):
        schema.to_array(Table([[1, 2, 3], [1, "x", 3]], NAMES))
    with pytest.raises(InputError, match="missing column"):
        schema.to_array(Table([[1, 2]], ["a", "b"]))
    assert schema.to_array(Table([["1", "2.5", "3e0"]], NAMES, text=True)).tolist() == [[1.0, 2.5, 3.0]]


def test_v2_columns_and_tensor_shapes() -> None:
    body = {"inputs": [{"name": n, "shape": [2], "datatype": "INT32", "data": [1, 2]} for n in NAMES]}
    table, _, _ = parse_v2(json.dumps(body).encode())
    assert table.columns == NAMES and InputSchema.build(SIGNATURE).to_array(table).tolist() == [[1, 1, 1], [2, 2, 2]]
    tensor = InputSchema.build(json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32",
                                                                              "shape": [-1, 1, 2, 2]}}]))
    image, _, _ = parse_v2(json.dumps({"inputs": [{"name": "x", "shape": [3, 1, 2, 2], "datatype": "FP32",
                                                   "data": list(range(12))}]}).encode())
    assert tensor.to_array(image).shape == (3, 1, 2, 2) and tensor.to_array(image).dtype == np.float32
    with pytest.raises(InputError, match="shape"):
        tensor.to_array(Table(np.zeros((3, 4), dtype=np.float32)))


def test_settle_heap_exempts_what_is_alive_from_later_collections() -> None:
    import gc

    from mlspec.runtime.heap import settle_heap

    survivors = [[i] for i in range(1000)]  # lists: objects the collector tracks
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(survivors)
        collected = {id(o) for o in gc.get_objects()}  # what later collections look at
        assert not any(id(o) in collected for o in survivors)
    finally:
        gc.unfreeze()


def test_the_asgi_adapter_answers_each_request_exactly_once() -> None:
    from mlspec.runtime.httpserver import Request
    from mlspec.runtime.serving.asgi import asgi_handler

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        if body == b"raise":
            raise RuntimeError("a bug")
        if body == b"silent":
            return
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-length", b"2"), (b"x-path", scope["path"].encode())]})
        await send({"type": "http.response.body", "body": b"o", "more_body": True})
        await send({"type": "http.response.body", "body": b"k"})
        if body == b"late":
            raise RuntimeError("after answering")

    answers: dict[bytes, list[Any]] = {}

    async def main() -> None:
        handle = asgi_handler(app)
        for body in (b"ok", b"raise", b"silent", b"late"):
            handle(Request(b"POST", b"/p?q=1", b"/p", [], body), answers.setdefault(body, []).append)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert answers[b"ok"] == [(201, [(b"x-path", b"/p")], b"ok")]  # one write; the server sets content-length
    assert [a[0] for a in answers[b"raise"]] == [500] and b"RuntimeError" in answers[b"raise"][0][2]
    assert [a[0] for a in answers[b"silent"]] == [500] and b"sent no response" in answers[b"silent"][0][2]
    assert answers[b"late"] == [(201, [(b"x-path", b"/p")], b"ok")]  # never a second answer
