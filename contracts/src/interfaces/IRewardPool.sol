// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRewardPool
/// @notice How revenue enters the reward pool (the RewardDistributor).
interface IRewardPool {
    /// @notice Pulls `amount` NDS from msg.sender (approve first) into the pool and counts it as
    /// funding that accepted roots may distribute.
    function fund(uint256 amount) external;
}
