// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {ITimingGuard} from "./interfaces/ITimingGuard.sol";

/// @title NodusTimelock
/// @notice The Nodus treasury and owner of every contract: OpenZeppelin's TimelockController
/// whose delay may only change while the reward challenge window still outlasts a governance
/// round (see ITimingGuard).
contract NodusTimelock is TimelockController {
    /// @notice Checks the timing orderings after every delay change.
    ITimingGuard public immutable timingGuard;

    /// @param minDelay Initial delay in seconds.
    /// @param proposers Accounts granted the proposer and canceller roles.
    /// @param executors Accounts granted the executor role (address(0): anyone).
    /// @param admin Optional temporary admin (the deployer, who renounces it).
    /// @param timingGuard_ The protocol's TimingGuard.
    constructor(
        uint256 minDelay,
        address[] memory proposers,
        address[] memory executors,
        address admin,
        ITimingGuard timingGuard_
    ) TimelockController(minDelay, proposers, executors, admin) {
        timingGuard = timingGuard_;
    }

    /// @notice Changes the delay (only through a timelocked operation); reverts with the guard's
    /// error when the new delay breaks a timing ordering.
    function updateDelay(uint256 newDelay) public override {
        super.updateDelay(newDelay);
        timingGuard.check();
    }
}
