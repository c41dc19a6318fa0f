// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ITimingGuard
/// @notice Keeps the protocol's two timing orderings for its whole life, whichever of the four
/// clocks governance changes:
/// - challenge window > governance round (voting delay + voting period + timelock delay), so the
///   DAO can revoke a bad reward root before anyone may accept it;
/// - unbonding period > challenge window + governance round, so an operator cannot exit before a
///   slash for a bad epoch can pass.
/// @dev Each contract that owns one of the clocks calls `check()` after changing it, and reverts
/// with the guard's error when the new value breaks an ordering.
interface ITimingGuard {
    /// @notice The guard now reads the clocks of these contracts.
    event TimingGuardInitialized(
        address indexed governor, address indexed timelock, address rewards, address registry
    );

    /// @notice The challenge window does not outlast a governance round.
    error ChallengeWindowTooShort(uint256 challengePeriod, uint256 governanceRound);
    /// @notice The unbonding period does not outlast the challenge window plus a governance round.
    error UnbondingTooShort(uint256 unbondingPeriod, uint256 slashPath);
    /// @notice `initialize` was called a second time.
    error TimingGuardAlreadyInitialized();
    /// @notice Only the account that deployed the guard may initialize it.
    error TimingGuardUnauthorized(address caller);
    /// @notice A contract address given to `initialize` is zero.
    error TimingGuardZeroAddress();

    /// @notice Reverts with ChallengeWindowTooShort or UnbondingTooShort when an ordering is
    /// broken; returns quietly before `initialize` (while the protocol is being deployed).
    function check() external view;

    /// @notice Voting delay + voting period + timelock delay, in seconds (0 before `initialize`).
    function governanceRound() external view returns (uint256);
}

/// @notice The reward contract's clock the guard reads.
interface IChallengeWindow {
    function challengePeriod() external view returns (uint64);
}

/// @notice The registry's clock the guard reads.
interface IUnbondingPeriod {
    function unbondingPeriod() external view returns (uint64);
}

/// @notice The timelock's clock the guard reads.
interface ITimelockDelay {
    function getMinDelay() external view returns (uint256);
}

/// @notice The governor's clocks the guard reads.
interface IGovernorClocks {
    function votingDelay() external view returns (uint256);
    function votingPeriod() external view returns (uint256);
}
