"""Reward epochs: scores, allocations and the Merkle tree the RewardDistributor checks."""
