"""The trading environment: execution model, actions, rewards, observations, and the single and batched envs."""

import gymnasium

gymnasium.register("tradelab/Trading-v0", entry_point="tradelab.env.trading_env:TradingEnv")
