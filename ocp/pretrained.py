"""Pretrained PPO critics: a checkpoint file, or the newest valid checkpoint of a run directory, restored as a PPO
agent (:class:`PretrainedAgent`), and the two starting points a regressor gets from it: a trainable copy of its critic
(:func:`pretrained_critic`) and a freshly initialised critic of the same architecture (:func:`random_critic`). The
transfer experiment (:mod:`ocp.transfer`) uses them."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch import nn

from ocp.agent import Agent
from ocp.checkpoint import CorruptCheckpointError, load_checkpoint, load_latest_checkpoint

RandomInit = Literal["ppo", "torch"]


@dataclass
class PretrainedAgent:
    """A PPO agent restored from a checkpoint; its ``critic`` starts the transfer experiment's regressors."""

    label: str
    source: Path
    agent: Agent
    activation: str
    hidden_sizes: tuple[int, ...]
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.agent.critic[0].in_features)


def agent_from_payload(payload: Any, source: str | Path) -> tuple[Agent, str, dict[str, Any]]:
    """The :class:`Agent` of a checkpoint payload (:meth:`Agent.from_checkpoint`) in eval mode, its activation, and
    where it came from (environment, PPO seed, environment steps) for the record."""
    agent, config = Agent.from_checkpoint(payload, source)
    provenance = {
        "env_id": config.get("env_id"),
        "ppo_seed": config.get("seed"),
        "global_step": payload.get("global_step"),
    }
    return agent, config["activation"], provenance


def _default_label(path: Path, activation: str) -> str:
    # A run directory names the run; a checkpoint file inside <run>/checkpoints/ is named after run and file.
    if path.is_dir():
        return f"{activation}:{path.name}"
    if path.parent.name == "checkpoints":
        return f"{activation}:{path.parent.parent.name}/{path.stem}"
    return f"{activation}:{path.stem}"


def load_pretrained(
    path: str | Path,
    expected_activation: Optional[str] = None,
    input_dim: Optional[int] = None,
    label: Optional[str] = None,
) -> PretrainedAgent:
    """Load a checkpoint file, or the newest valid checkpoint of a run directory, as a :class:`PretrainedAgent`.

    ``ValueError`` (naming the file and the problem) for a missing path, a run directory without checkpoints, a
    corrupt file, a payload that is not a PPO agent, an activation other than ``expected_activation`` or a critic whose
    input size is not ``input_dim``.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        if path.is_dir():
            found = load_latest_checkpoint(path)
            if found is None:
                raise ValueError(f"{path} is a directory without checkpoints")
            source, payload = found
        else:
            source, payload = path, load_checkpoint(path)
    except CorruptCheckpointError as err:
        raise ValueError(f"corrupt checkpoint: {err}") from err
    agent, activation, provenance = agent_from_payload(payload, source)
    if expected_activation is not None and activation != expected_activation:
        raise ValueError(
            f"{source}: activation mismatch, the checkpoint's critic uses {activation!r}, "
            f"expected {expected_activation!r}"
        )
    pretrained = PretrainedAgent(
        label or _default_label(path, activation),
        Path(source),
        agent,
        activation,
        tuple(int(m.out_features) for m in agent.critic if isinstance(m, nn.Linear))[:-1],
        provenance,
    )
    if input_dim is not None and pretrained.obs_dim != input_dim:
        raise ValueError(f"{source}: the critic takes {pretrained.obs_dim} inputs, the task has {input_dim}")
    return pretrained


def pretrained_critic(p: PretrainedAgent) -> nn.Sequential:
    """A trainable copy of the checkpoint's critic (same modules, so the same activation)."""
    return copy.deepcopy(p.agent.critic).train()


def random_critic(p: PretrainedAgent, seed: int, scheme: RandomInit = "ppo") -> nn.Sequential:
    """A freshly initialised critic of the same architecture, built by PPO's own code: ``ppo`` keeps its init
    (orthogonal, gain √2 hidden / 1 output, zero biases); ``torch`` re-initialises every layer with PyTorch's default
    ``nn.Linear`` init (Kaiming-uniform weights and uniform biases), the init a paper's plain MLP would get.

    The torch seed is derived from ``seed`` (not ``seed`` itself) so that it does not reproduce the initial weights of
    a PPO run started with the same seed."""
    if scheme not in ("ppo", "torch"):
        raise ValueError(f"random init scheme must be 'ppo' or 'torch', got {scheme!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
        critic = Agent(p.obs_dim, int(p.agent.actor_logstd.shape[-1]), p.hidden_sizes, p.activation).critic
        if scheme == "torch":
            for m in critic:
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        return critic
