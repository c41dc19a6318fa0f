// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {
    IChallengeWindow,
    IGovernorClocks,
    ITimelockDelay,
    ITimingGuard,
    IUnbondingPeriod
} from "./interfaces/ITimingGuard.sol";

/// @title TimingGuard
/// @notice Holds the protocol's timing orderings for life (see ITimingGuard). Deployed first, so
/// the governor, timelock, RewardDistributor and NodeRegistry can take its address in their
/// constructors; wired once by its deployer at the end of the deployment.
/// @dev Has no setters after `initialize`: which contracts it reads never changes.
contract TimingGuard is ITimingGuard {
    /// @notice The only account that may call `initialize`.
    address public immutable deployer;

    IGovernorClocks public governor;
    ITimelockDelay public timelock;
    IChallengeWindow public rewards;
    IUnbondingPeriod public registry;

    constructor() {
        deployer = msg.sender;
    }

    /// @notice Names the contracts whose clocks the guard reads; once, by the deployer.
    function initialize(
        IGovernorClocks governor_,
        ITimelockDelay timelock_,
        IChallengeWindow rewards_,
        IUnbondingPeriod registry_
    ) external {
        if (msg.sender != deployer) {
            revert TimingGuardUnauthorized(msg.sender);
        }
        if (address(governor) != address(0)) revert TimingGuardAlreadyInitialized();
        if (
            address(governor_) == address(0) || address(timelock_) == address(0)
                || address(rewards_) == address(0) || address(registry_) == address(0)
        ) revert TimingGuardZeroAddress();
        (governor, timelock, rewards, registry) = (governor_, timelock_, rewards_, registry_);
        emit TimingGuardInitialized(
            address(governor_), address(timelock_), address(rewards_), address(registry_)
        );
    }

    /// @inheritdoc ITimingGuard
    function governanceRound() public view returns (uint256) {
        if (address(governor) == address(0)) return 0;
        return governor.votingDelay() + governor.votingPeriod() + timelock.getMinDelay();
    }

    /// @inheritdoc ITimingGuard
    function check() external view {
        if (address(governor) == address(0)) return; // still deploying: it ends with a check
        uint256 round = governanceRound();
        uint256 window = rewards.challengePeriod();
        if (window <= round) revert ChallengeWindowTooShort(window, round);
        uint256 slashPath = window + round;
        uint256 unbonding = registry.unbondingPeriod();
        if (unbonding <= slashPath) revert UnbondingTooShort(unbonding, slashPath);
    }
}
