// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ISubscriptionManager
/// @notice What other contracts (NodusSwap) and off-chain clients use of the SubscriptionManager.
interface ISubscriptionManager {
    /// @notice Price of one 30-day period, in NDS wei.
    function pricePerPeriod() external view returns (uint256);

    /// @notice Length of one paid period: 30 days.
    function PERIOD() external view returns (uint256);

    /// @notice Largest number of months one call may buy.
    function MAX_MONTHS() external view returns (uint32);

    /// @notice When `subscriber`'s access ends (unix seconds; 0 if never paid).
    function expiresAt(address subscriber) external view returns (uint64);

    /// @notice Pays `months` periods for `beneficiary` from msg.sender's NDS (approve first).
    /// @param maxPrice Reverts if the price per period is above this (a price change in flight).
    /// @return newExpiry max(now, expiresAt) + months * PERIOD.
    function subscribe(address beneficiary, uint32 months, uint256 maxPrice)
        external
        returns (uint64 newExpiry);
}
