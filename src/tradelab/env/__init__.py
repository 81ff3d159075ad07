"""The trading environment: execution model, actions, rewards, observations, and the single and batched envs."""
