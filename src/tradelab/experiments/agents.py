"""Trained SB3 models as env policies ``(observation, info) -> action``, fast where the network allows.

Evaluation plays one long episode bar by bar, so the cost of one action matters: SB3's
``model.predict`` spends about 100 µs per call in torch overhead. For the common case, an MLP actor
on flat observations (PPO, A2C, MaskablePPO with ``MlpPolicy``; DQN and QR-DQN), :func:`agent_policy`
copies the weights into numpy and computes the deterministic action in a few microseconds. Other
networks (recurrent, custom extractors) fall back to ``model.predict``. Both give the same actions
(tested).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

Policy = Callable[[Any, dict[str, Any]], Any]
_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: np.tanh,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
    nn.Identity: lambda x: x,
}


def agent_policy(model: Any, env: Any, deterministic: bool = True) -> Policy:
    """A policy playing ``model`` in ``env`` (a :class:`~tradelab.env.trading_env.TradingEnv`).

    :param model: a trained SB3 / sb3-contrib algorithm.
    :param env: the env it will act in (MaskablePPO reads its action masks).
    :param deterministic: take the most likely action (the numpy path exists only for this).
    """
    if deterministic and type(model).__name__ != "MaskablePPO":  # masks need the torch path
        layers = _numpy_layers(model)
        if layers is not None:
            return _numpy_policy(layers, model.action_space)
    return _predict_policy(model, env, deterministic)


def _numpy_layers(model: Any) -> list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]] | None:
    """The actor's dense layers (weight transposed, bias, activation) in float32, or None if not a plain MLP."""
    policy = model.policy
    extractor = getattr(policy, "features_extractor", None) or getattr(
        getattr(policy, "q_net", None), "features_extractor", None
    )
    if type(extractor).__name__ != "FlattenExtractor":
        return None
    if hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net") and not hasattr(policy, "lstm_actor"):
        modules = [*policy.mlp_extractor.policy_net, policy.action_net]
    elif hasattr(policy, "q_net") and hasattr(policy.q_net, "q_net") and type(policy).__name__ == "DQNPolicy":
        modules = list(policy.q_net.q_net)
    else:
        return None
    layers: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().numpy().T.astype(np.float32)
            layers.append((weight, module.bias.detach().cpu().numpy().astype(np.float32), _ACTIVATIONS[nn.Identity]))
        elif type(module) in _ACTIVATIONS and layers:
            weight, bias, _ = layers[-1]
            layers[-1] = (weight, bias, _ACTIVATIONS[type(module)])
        else:
            return None
    return layers


def _numpy_policy(
    layers: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]], space: spaces.Space[Any]
) -> Policy:
    """Deterministic actions from the numpy network: argmax per discrete dimension, the mean for a Box."""

    def forward(observation: np.ndarray) -> np.ndarray:
        x = np.asarray(observation, dtype=np.float32).reshape(-1)
        for weight, bias, activation in layers:
            x = activation(x @ weight + bias)
        return x

    if isinstance(space, spaces.Discrete):
        return lambda observation, _info: int(np.argmax(forward(observation)))
    if isinstance(space, spaces.MultiDiscrete):
        cuts = np.cumsum(space.nvec)[:-1]
        return lambda observation, _info: np.array([int(np.argmax(p)) for p in np.split(forward(observation), cuts)])
    if isinstance(space, spaces.Box):
        low, high = space.low, space.high
        return lambda observation, _info: np.clip(forward(observation), low, high)
    raise TypeError(f"no numpy policy for the action space {space}")


def _predict_policy(model: Any, env: Any, deterministic: bool) -> Policy:
    """``model.predict`` one observation at a time (recurrent state and action masks handled)."""
    recurrent = hasattr(model.policy, "lstm_actor")
    maskable = type(model).__name__ == "MaskablePPO"
    memory: dict[str, Any] = {"state": None, "start": np.ones(1, dtype=bool)}

    def act(observation: Any, _info: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"deterministic": deterministic}
        if recurrent:
            kwargs.update(state=memory["state"], episode_start=memory["start"])
        if maskable:
            kwargs["action_masks"] = env.action_masks()
        with torch.no_grad():
            action, state = model.predict(observation, **kwargs)
        memory["state"], memory["start"] = state, np.zeros(1, dtype=bool)
        return action

    return act
