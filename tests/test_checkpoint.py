"""ocp.checkpoint: atomic writes, integrity check, rotation, config diff."""

import os
import warnings

import pytest
import torch

from ocp import checkpoint as ck
from ocp.atomic_files import atomic_write_json


def test_roundtrip_keeps_tensors_and_python_objects(tmp_path):
    payload = {"w": torch.arange(6.0).reshape(2, 3), "step": 7, "rng": torch.get_rng_state(), "nested": {"a": [1, 2]}}
    ck.save_checkpoint(tmp_path / "c.ckpt", payload)
    back = ck.load_checkpoint(tmp_path / "c.ckpt")
    assert torch.equal(back["w"], payload["w"])
    assert back["step"] == 7 and back["nested"] == {"a": [1, 2]}
    assert torch.equal(back["rng"], payload["rng"])


def test_crash_before_rename_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    ck.save_checkpoint(path, {"version": 1})

    def crash(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(ck.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, {"version": 2})
    monkeypatch.undo()
    assert ck.load_checkpoint(path) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["c.ckpt"]  # no temp file left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_checkpoint_is_never_loaded(tmp_path, damage):
    path = tmp_path / "c.ckpt"
    ck.save_checkpoint(path, {"x": torch.ones(100)})
    raw = path.read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) - 10]
    elif damage == "flip":
        i = len(raw) - 50
        raw = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
    elif damage == "garbage":
        raw = b"PK\x03\x04 not a checkpoint at all"
    else:
        raw = b""
    path.write_bytes(raw)
    with pytest.raises(ck.CorruptCheckpointError):
        ck.load_checkpoint(path)


def test_rotation_keeps_newest_and_falls_back_past_a_corrupt_one(tmp_path):
    for update in (1, 2, 3):
        ck.save_rotating(tmp_path, update, {"update": update}, keep=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["update_0000002.ckpt", "update_0000003.ckpt"]
    newest = ck.checkpoint_path(tmp_path, 3)
    newest.write_bytes(newest.read_bytes()[:-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path, payload = ck.load_latest_checkpoint(tmp_path)
    assert payload == {"update": 2} and path.name == "update_0000002.ckpt"
    assert any("untrustworthy" in str(w.message) for w in caught)


def test_all_checkpoints_corrupt_raises_and_none_means_fresh(tmp_path):
    assert ck.load_latest_checkpoint(tmp_path) is None
    ck.save_rotating(tmp_path, 1, {"u": 1}, keep=1)
    ck.checkpoint_path(tmp_path, 1).write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ck.CorruptCheckpointError, match="no checkpoint passes verification"):
            ck.load_latest_checkpoint(tmp_path)


def test_config_diff_lists_each_differing_field():
    saved = {"lr": 0.0003, "hidden": [64, 64], "seed": 1, "resume": False, "old": 1}
    current = {"lr": 0.001, "hidden": (64, 64), "seed": 1, "resume": True, "new": "x"}
    assert ck.config_diff(saved, current, ignore=frozenset({"resume"})) == [
        "lr: saved=0.0003 current=0.001",
        "new: saved='<absent>' current='x'",
        "old: saved=1 current='<absent>'",
    ]
    assert ck.config_diff(saved, dict(saved)) == []


def test_atomic_write_json_is_readable(tmp_path):
    atomic_write_json(tmp_path / "config.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "config.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


class Counter:
    def __init__(self, value=0):
        self.value = value

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_run_state_saves_and_restores_every_registered_part(tmp_path):
    gen = torch.Generator().manual_seed(3)
    weights = {"w": torch.ones(2)}
    parts = ck.RunState()
    parts.register("counter", Counter(7))
    parts.register("generator", ck.GeneratorState(gen))
    parts.register("weights", ck.TensorsState(weights))
    ck.save_checkpoint(tmp_path / "c.ckpt", {"format": 3, "update": 1, **parts.state_dict()})
    expected = torch.rand(3, generator=gen)  # what the generator draws next from the saved state
    gen.manual_seed(99)
    held = weights["w"]  # a probe keeps the tensor itself: the restore must write into it
    held.zero_()
    fresh = Counter()
    restored = ck.RunState()
    restored.register("counter", fresh)
    restored.register("generator", ck.GeneratorState(gen))
    restored.register("weights", ck.TensorsState(weights))
    restored.load_state_dict(ck.load_checkpoint(tmp_path / "c.ckpt"))
    assert fresh.value == 7 and torch.equal(torch.rand(3, generator=gen), expected)
    assert torch.equal(held, torch.ones(2)) and weights["w"] is held
    assert restored.names == ["counter", "generator", "weights"]


def test_run_state_refuses_what_it_cannot_restore():
    parts = ck.RunState()
    parts.register("counter", Counter())
    with pytest.raises(ValueError, match="reserved or already registered"):
        parts.register("counter", Counter())
    with pytest.raises(ValueError, match="reserved"):
        parts.register("update", Counter())
    with pytest.raises(TypeError, match="needs state_dict"):
        parts.register("plain", object())
    with pytest.raises(ValueError, match=r"holds no state for part\(s\) \['counter'\]"):
        parts.load_state_dict({"update": 3})
    with pytest.raises(ValueError, match=r"part\(s\) \['monitor'\] that this run does not have"):
        parts.load_state_dict({"counter": {"value": 1}, "monitor": {"x": 1}})
    parts.load_state_dict({"counter": {"value": 2}, "monitor": None, "update": 3})  # a part the run lacks, saved empty
